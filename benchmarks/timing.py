"""Timing shared by the benchmarks: the median of repeated wall-clock measurements."""

import statistics
import time
from collections.abc import Callable


def timed(function: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``repeat`` calls, in seconds."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
