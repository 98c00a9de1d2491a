"""Timing shared by the benchmarks: the median of repeated wall-clock (or CPU) measurements."""

import statistics
import time
from collections.abc import Callable


def timed(function: Callable[[], object], repeat: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """Median time of ``repeat`` calls, in seconds: wall time, or ``clock=time.process_time`` for CPU time."""
    samples = []
    for _ in range(repeat):
        start = clock()
        function()
        samples.append(clock() - start)
    return statistics.median(samples)
