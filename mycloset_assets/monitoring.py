"""Measure named steps: wall time, CPU time, peak RSS, device memory; thresholds that raise alerts.

A :class:`Monitor` times each step (``with monitor.step("pose"):`` or ``@monitor.track()``), keeps the
resulting :class:`StepMetrics`, checks them against per-step :class:`Threshold` s, and exports JSON lines,
p50/p95 summaries and flat Dagster metadata. Why each figure is measured the way it is:

- CPU time is ``time.process_time()``: user + system time of every thread of this process (torch and
  numpy compute on their own threads), not of child processes.
- Peak RSS is sampled on a background thread (default every 5 ms) so a short-lived allocation is seen
  although it is freed before the step ends. The OS high-water mark (Linux ``VmHWM``, elsewhere
  ``getrusage`` ``ru_maxrss``) is a process-lifetime maximum: when it rises during a step, the step's peak
  is that new maximum, so it is used as a floor that no sampling interval can miss. RSS is the whole
  process's: steps running at once on several threads see each other's memory.
- Device memory is ``torch.cuda.max_memory_allocated`` (peak statistics reset at the start of each step,
  nested steps kept correct) or, on Apple MPS, the sampled ``torch.mps.current_allocated_memory``. It is
  ``None`` where no GPU is in use. Torch is never imported by this module: a process that has not
  imported torch has no device memory.

Sizes are MiB (2**20 bytes), times seconds.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import psutil

try:
    import resource
except ImportError:  # Windows: psutil's peak working set stands in for ru_maxrss
    resource = None

LOGGER = logging.getLogger(__name__)

MIB = 2**20
METRICS = ("seconds", "cpu_seconds", "peak_rss_mb", "rss_increase_mb", "device_peak_mb")
REPORT_KEYS = ("name", "seconds", "cpu_seconds", "peak_rss_mb")
ALL_STEPS = "*"
DEFAULT_INTERVAL = 0.005
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

P = ParamSpec("P")
R = TypeVar("R")


class MonitorError(Exception):
    """Base class of the monitor's errors."""


class ThresholdExceededError(MonitorError):
    """A step went over a threshold marked ``fatal``; the step was recorded and its alerts reported first."""

    def __init__(self, metrics: StepMetrics, alerts: Sequence[Alert]) -> None:
        self.metrics = metrics
        self.alerts = list(alerts)
        super().__init__("; ".join(alert.message for alert in alerts))


@dataclass(frozen=True)
class Threshold:
    """An upper limit on one metric of a step; ``fatal`` makes going over it raise ThresholdExceededError."""

    metric: str
    limit: float
    fatal: bool = False

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown threshold metric {self.metric!r}; use one of {', '.join(METRICS)}")


@dataclass(frozen=True)
class Alert:
    """A step's metric went over its limit."""

    step: str
    metric: str
    value: float
    limit: float
    fatal: bool = False

    @property
    def message(self) -> str:
        """One readable sentence naming the step, the metric, the value and the limit."""
        kind = "fatal threshold" if self.fatal else "threshold"
        return f"step {self.step!r}: {self.metric} = {self.value:.4g} is over its {kind} {self.limit:.4g}"

    def to_dict(self) -> dict[str, Any]:
        """The alert as a JSON-ready object."""
        return {"step": self.step, "metric": self.metric, "value": self.value, "limit": self.limit, "fatal": self.fatal}


@dataclass
class StepMetrics:
    """What one step cost. ``started``/``ended`` are Unix timestamps; ``error`` names an exception it raised."""

    name: str
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    rss_increase_mb: float
    device_peak_mb: float | None
    started: float
    ended: float
    start_rss_mb: float = 0.0
    end_rss_mb: float = 0.0
    device: str | None = None
    error: str | None = None
    alerts: list[Alert] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready object; ``name``, ``seconds``, ``cpu_seconds``, ``peak_rss_mb`` are report.json's step keys."""
        return {
            "name": self.name,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "peak_rss_mb": self.peak_rss_mb,
            "rss_increase_mb": self.rss_increase_mb,
            "device_peak_mb": self.device_peak_mb,
            "started": self.started,
            "ended": self.ended,
            "start_rss_mb": self.start_rss_mb,
            "end_rss_mb": self.end_rss_mb,
            "device": self.device,
            "error": self.error,
            "alerts": [alert.to_dict() for alert in self.alerts],
        }

    def to_report(self) -> dict[str, Any]:
        """The step as try-on report.json lists it (INTERFACES.md): name, seconds, cpu_seconds, peak_rss_mb."""
        return {key: getattr(self, key) for key in REPORT_KEYS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepMetrics:
        """Rebuild from :meth:`to_dict`'s object (e.g. a JSON line)."""
        fields = dict(data)
        alerts = [Alert(**alert) for alert in fields.pop("alerts", [])]
        return cls(**fields, alerts=alerts)

    def to_metadata(self) -> dict[str, float | int | str]:
        """Flat metadata for a Dagster materialisation: numbers and strings only (no device figure on CPU)."""
        metadata: dict[str, float | int | str] = {
            "seconds": round(self.seconds, 4),
            "cpu_seconds": round(self.cpu_seconds, 4),
            "peak_rss_mb": round(self.peak_rss_mb, 2),
            "rss_increase_mb": round(self.rss_increase_mb, 2),
            "started": datetime.fromtimestamp(self.started, UTC).isoformat(),
            "alerts": len(self.alerts),
        }
        if self.device_peak_mb is not None:
            metadata["device_peak_mb"] = round(self.device_peak_mb, 2)
            metadata["device"] = self.device or ""
        if self.alerts:
            metadata["alert_messages"] = "; ".join(alert.message for alert in self.alerts)
        return metadata


def _high_water(process: psutil.Process) -> int:
    """The OS's peak RSS of this process image in bytes: Linux VmHWM, else ru_maxrss (Windows: peak_wset).

    Linux's ru_maxrss is not used there: exec carries the parent's high-water mark into it, so a worker
    started from a large process (Dagster's executor, pytest) reports the parent's peak.
    """
    if sys.platform.startswith("linux"):
        with open(f"/proc/{process.pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    if resource is None:
        return process.memory_info().peak_wset
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


class _Sampler:
    """Samples RSS (and MPS memory) on a daemon thread until stopped, keeping the maxima.

    RSS belongs to the process, so a sampler that stops folds its peak into the samplers started before it
    and still running (an enclosing step covers all of a nested one's time).
    """

    _lock = threading.Lock()
    _running: list[_Sampler] = []
    _started = itertools.count()

    def __init__(self, process: psutil.Process, interval: float, mps: Any | None) -> None:
        self._process = process
        self._interval = interval
        self.mps = mps
        self._stop = threading.Event()
        self._order = next(self._started)
        self._high_water = _high_water(process)
        self._statm = os.open("/proc/self/statm", os.O_RDONLY) if sys.platform.startswith("linux") else None
        self.start_rss = self._rss()
        self.peak_rss = self.start_rss
        self.peak_mps = mps.current_allocated_memory() if mps is not None else 0
        with self._lock:
            self._running.append(self)
        self._thread = threading.Thread(target=self._run, name="mycloset-monitor", daemon=True)
        self._thread.start()

    def _rss(self) -> int:
        """Current RSS in bytes; on Linux a pread of /proc/self/statm (a sixth of psutil's cost per sample)."""
        if self._statm is None:
            return self._process.memory_info().rss
        return int(os.pread(self._statm, 128, 0).split()[1]) * PAGE_SIZE

    def _sample(self) -> int:
        rss = self._rss()
        mps = self.mps.current_allocated_memory() if self.mps is not None else 0
        with self._lock:
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_mps = max(self.peak_mps, mps)
        return rss

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def stop(self) -> int:
        """Stop sampling, settle the peaks (high-water floor, folding outwards); returns the current RSS in bytes."""
        self._stop.set()
        self._thread.join()
        rss = self._sample()
        if self._statm is not None:
            os.close(self._statm)
        high_water = _high_water(self._process)
        with self._lock:
            if high_water > self._high_water:
                self.peak_rss = max(self.peak_rss, high_water)
            self._running.remove(self)
            for outer in self._running:
                if outer._order < self._order:
                    outer.peak_rss = max(outer.peak_rss, self.peak_rss)
                    outer.peak_mps = max(outer.peak_mps, self.peak_mps)
        return rss


class _CudaPeaks:
    """Per-step CUDA peaks while ``reset_peak_memory_stats`` is global: nested steps fold peaks into outer ones."""

    _lock = threading.Lock()
    _open: list[list[int]] = []

    @classmethod
    def _cuda(cls) -> Any | None:
        torch = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_initialized():
            return None
        return torch.cuda

    @classmethod
    def _fold(cls, cuda: Any) -> None:
        peak = cuda.max_memory_allocated()
        for running in cls._open:
            running[0] = max(running[0], peak)

    @classmethod
    def begin(cls) -> list[int]:
        """Open a step's running peak (bytes) and reset the device's peak statistics."""
        running = [0]
        with cls._lock:
            cuda = cls._cuda()
            if cuda is not None:
                cls._fold(cuda)
                cuda.reset_peak_memory_stats()
            cls._open.append(running)
        return running

    @classmethod
    def end(cls, running: list[int]) -> tuple[float | None, str | None]:
        """Close a step: its peak in MiB and the device name, or (None, None) when CUDA was never used."""
        with cls._lock:
            cuda = cls._cuda()
            cls._open.remove(running)
            if cuda is None:
                return None, None
            cls._fold(cuda)
            peak = max(running[0], cuda.max_memory_allocated())
            return peak / MIB, f"cuda:{cuda.current_device()}"


def _mps_module() -> Any | None:
    torch = sys.modules.get("torch")
    if torch is None or not torch.backends.mps.is_available():
        return None
    return torch.mps


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks (numpy's default method)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(steps: Iterable[StepMetrics]) -> dict[str, dict[str, float | int]]:
    """Per step name: count, alerts, errors, and p50/p95/max/mean of every metric that was measured."""
    groups: dict[str, list[StepMetrics]] = {}
    for step in steps:
        groups.setdefault(step.name, []).append(step)
    summary: dict[str, dict[str, float | int]] = {}
    for name, group in groups.items():
        row: dict[str, float | int] = {
            "count": len(group),
            "alerts": sum(len(step.alerts) for step in group),
            "errors": sum(step.error is not None for step in group),
        }
        for metric in METRICS:
            values = [getattr(step, metric) for step in group if getattr(step, metric) is not None]
            if values:
                row[f"{metric}_p50"] = percentile(values, 50)
                row[f"{metric}_p95"] = percentile(values, 95)
                row[f"{metric}_max"] = max(values)
                row[f"{metric}_mean"] = sum(values) / len(values)
        summary[name] = row
    return summary


def read_jsonl(path: str | os.PathLike[str]) -> list[StepMetrics]:
    """The steps of a JSON-lines file written by :meth:`Monitor.write_jsonl` or a Monitor's ``jsonl_path``."""
    steps = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            steps.append(StepMetrics.from_dict(json.loads(line)))
        except (ValueError, TypeError) as error:
            raise MonitorError(f"{path}:{number} is not a step-metrics JSON line: {error}") from error
    return steps


class Measurement:
    """The handle a step's ``with`` block gets: ``metrics`` is set when the block ends."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.metrics: StepMetrics | None = None


class Monitor:
    """Measures steps, keeps their metrics, checks thresholds, and exports them.

    ``thresholds`` maps a step name (or ``"*"`` for every step) to its thresholds. Each alert is logged at
    WARNING and passed to ``on_alert``; a ``fatal`` one raises :class:`ThresholdExceededError` after the step is
    recorded (never masking an exception the step itself raised). ``jsonl_path``, when given, gets one line
    appended per finished step. ``interval`` is the RSS sampling period in seconds.
    """

    def __init__(
        self,
        thresholds: Mapping[str, Sequence[Threshold]] | None = None,
        on_alert: Callable[[Alert], None] | None = None,
        interval: float = DEFAULT_INTERVAL,
        jsonl_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"the sampling interval must be positive seconds, got {interval}")
        self.thresholds = {name: list(items) for name, items in (thresholds or {}).items()}
        self.on_alert = on_alert
        self.interval = interval
        self.jsonl_path = Path(jsonl_path) if jsonl_path is not None else None
        self.steps: list[StepMetrics] = []
        self._lock = threading.Lock()
        self._process = psutil.Process()

    @contextmanager
    def step(self, name: str) -> Iterator[Measurement]:
        """Measure the ``with`` block as step ``name``; the yielded handle's ``metrics`` is set at its end."""
        handle = Measurement(name)
        cuda_running = _CudaPeaks.begin()
        sampler = _Sampler(self._process, self.interval, _mps_module())
        started, clock, cpu = time.time(), time.perf_counter(), time.process_time()
        error: str | None = None
        try:
            yield handle
        except BaseException as raised:
            error = type(raised).__name__
            raise
        finally:
            seconds, cpu_seconds = time.perf_counter() - clock, time.process_time() - cpu
            end_rss = sampler.stop()
            device_peak, device = _CudaPeaks.end(cuda_running)
            if device is None and sampler.mps is not None:
                device_peak, device = sampler.peak_mps / MIB, "mps"
            peak_rss, start_rss = sampler.peak_rss / MIB, sampler.start_rss / MIB
            handle.metrics = StepMetrics(
                name=name,
                seconds=seconds,
                cpu_seconds=cpu_seconds,
                peak_rss_mb=peak_rss,
                rss_increase_mb=max(0.0, peak_rss - start_rss),
                device_peak_mb=device_peak,
                started=started,
                ended=started + seconds,
                start_rss_mb=start_rss,
                end_rss_mb=end_rss / MIB,
                device=device,
                error=error,
            )
            self._record(handle.metrics)
        self._raise_if_fatal(handle.metrics)

    def track(self, name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorator: every call of the function is a step named ``name`` (default: its qualified name)."""

        def decorate(function: Callable[P, R]) -> Callable[P, R]:
            step_name = name or function.__qualname__

            @functools.wraps(function)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                with self.step(step_name):
                    return function(*args, **kwargs)

            return wrapper

        return decorate

    def record(self, metrics: StepMetrics) -> StepMetrics:
        """Add a step measured elsewhere (e.g. read back from JSON lines), checking thresholds as for a live one."""
        self._record(metrics)
        self._raise_if_fatal(metrics)
        return metrics

    def _record(self, metrics: StepMetrics) -> None:
        metrics.alerts = self.check(metrics)
        with self._lock:
            self.steps.append(metrics)
            if self.jsonl_path is not None:
                with self.jsonl_path.open("a") as stream:
                    stream.write(json.dumps(metrics.to_dict()) + "\n")
        for alert in metrics.alerts:
            LOGGER.warning("%s", alert.message)
            if self.on_alert is not None:
                self.on_alert(alert)

    def check(self, metrics: StepMetrics) -> list[Alert]:
        """The alerts of one step's metrics against its thresholds and the ``"*"`` ones (unmeasured metrics skip)."""
        alerts = []
        for threshold in self.thresholds.get(metrics.name, []) + self.thresholds.get(ALL_STEPS, []):
            value = getattr(metrics, threshold.metric)
            if value is not None and value > threshold.limit:
                alerts.append(Alert(metrics.name, threshold.metric, value, threshold.limit, threshold.fatal))
        return alerts

    @staticmethod
    def _raise_if_fatal(metrics: StepMetrics) -> None:
        fatal = [alert for alert in metrics.alerts if alert.fatal]
        if fatal:
            raise ThresholdExceededError(metrics, fatal)

    def write_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """Write every recorded step, one JSON object per line (the file is replaced)."""
        path = Path(path)
        with self._lock:
            lines = [json.dumps(step.to_dict()) + "\n" for step in self.steps]
        path.write_text("".join(lines))
        return path

    def summary(self) -> dict[str, dict[str, float | int]]:
        """:func:`summarize` of the recorded steps."""
        with self._lock:
            return summarize(list(self.steps))

    def to_metadata(self) -> dict[str, float | int | str]:
        """Flat metadata of the whole run: ``steps``, ``alerts`` and ``<step>.<figure>`` for every summary figure."""
        summary = self.summary()
        metadata: dict[str, float | int | str] = {
            "steps": sum(int(row["count"]) for row in summary.values()),
            "alerts": sum(int(row["alerts"]) for row in summary.values()),
        }
        for name, row in summary.items():
            for figure, value in row.items():
                metadata[f"{name}.{figure}"] = round(value, 4) if isinstance(value, float) else value
        return metadata
