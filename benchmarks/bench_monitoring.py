"""Overhead of the performance monitor: the cost of one step and of the RSS sampler thread.

Run: ``python benchmarks/bench_monitoring.py [--repeat 200]``. Prints, per sampling interval: the wall time
of entering and leaving an empty step, the CPU the sampler thread uses while a step sleeps (as a share of
one core), and the slowdown of a fixed CPU-bound numpy workload measured as one step versus unmeasured.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from mycloset_assets.monitoring import Monitor


def empty_step_us(monitor: Monitor, repeat: int) -> float:
    """Median microseconds of ``with monitor.step(...): pass``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        with monitor.step("empty"):
            pass
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def sampler_cpu_share(monitor: Monitor, seconds: float) -> float:
    """CPU seconds per wall second of a step that only sleeps: what sampling costs."""
    with monitor.step("idle") as step:
        time.sleep(seconds)
    return step.metrics.cpu_seconds / step.metrics.seconds


def workload() -> float:
    """A fixed CPU-bound numpy workload (matrix products); returns its wall seconds."""
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((256, 256))
    start = time.perf_counter()
    for _ in range(200):
        matrix = np.tanh(matrix @ matrix.T / 256)
    return time.perf_counter() - start


def workload_slowdown(monitor: Monitor, rounds: int) -> float:
    """Median measured / unmeasured wall time of :func:`workload`, alternating to share machine noise."""
    ratios = []
    for _ in range(rounds):
        bare = workload()
        with monitor.step("workload"):
            measured = workload()
        ratios.append(measured / bare)
    return statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="empty steps per interval")
    parser.add_argument("--rounds", type=int, default=5, help="workload pairs per interval")
    args = parser.parse_args()
    print(f"{'interval ms':>11}  {'empty step us':>13}  {'sampler CPU %':>13}  {'workload x':>10}")
    for interval in (0.001, 0.005, 0.02):
        monitor = Monitor(interval=interval)
        step_us = empty_step_us(monitor, args.repeat)
        share = sampler_cpu_share(monitor, 1.0)
        slowdown = workload_slowdown(monitor, args.rounds)
        print(f"{interval * 1e3:>11g}  {step_us:>13.0f}  {share * 100:>13.2f}  {slowdown:>10.3f}")


if __name__ == "__main__":
    main()
