"""The performance monitor: real allocations, real CPU work, thresholds, exports and summaries."""

from __future__ import annotations

import json
import logging
import mmap
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mycloset_assets.monitoring import (
    Alert,
    Monitor,
    MonitorError,
    StepMetrics,
    Threshold,
    ThresholdExceededError,
    percentile,
    read_jsonl,
)

MIB = 2**20


def _touched_block(mib: int) -> mmap.mmap:
    """``mib`` MiB of fresh anonymous pages, every one written; closing it returns them to the OS.

    An anonymous mapping is used rather than ``np.ones``: in a long-lived process the allocator may hand
    back pages that are already resident, which would not raise the RSS at all."""
    block = mmap.mmap(-1, mib * MIB)
    np.frombuffer(block, dtype=np.uint8)[:] = 1
    return block


def _burn_cpu(seconds: float) -> None:
    """Spin until this thread has used ``seconds`` of CPU time, whatever else the machine runs."""
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        sum(range(1000))


def _metrics(name: str, seconds: float, **values: float | None) -> StepMetrics:
    """Injected metrics with known values (no measurement)."""
    figures = {"cpu_seconds": 0.0, "peak_rss_mb": 100.0, "rss_increase_mb": 0.0, "device_peak_mb": None} | values
    return StepMetrics(name=name, seconds=seconds, started=1_700_000_000.0, ended=1_700_000_000.0 + seconds, **figures)


def test_short_lived_allocation_shows_in_peak_and_is_freed_by_the_end():
    monitor = Monitor()
    with monitor.step("allocate") as step:
        block = _touched_block(200)
        time.sleep(0.05)  # alive for ten sampling periods, then freed inside the step
        block.close()
    metrics = step.metrics
    assert metrics is monitor.steps[0]
    assert metrics.rss_increase_mb >= 200 * 0.98
    assert metrics.peak_rss_mb >= metrics.start_rss_mb + 200 * 0.98
    assert metrics.end_rss_mb < metrics.peak_rss_mb - 150
    assert metrics.seconds >= 0.05
    if not torch.cuda.is_initialized():
        assert metrics.device_peak_mb is None
        assert metrics.device is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM from /proc")
def test_high_water_mark_catches_a_peak_between_samples_and_sampling_catches_one_below_it():
    """In a fresh process (started from this large one, whose peak Linux's ru_maxrss would inherit): a 10 s
    interval never samples the step, so only the high-water mark can see its 300 MiB; then a 150 MiB step
    stays under that mark, so only the 5 ms sampler can see it."""
    script = textwrap.dedent(
        """
        import json, time
        import numpy as np
        from mycloset_assets.monitoring import Monitor

        def hwm():
            return next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
        between = Monitor(interval=10.0)
        with between.step("between_samples") as a:
            array = np.ones(300 * 2**20 // 8)
            del array
        before = hwm()
        with Monitor().step("under_high_water") as b:
            array = np.ones(150 * 2**20 // 8)
            time.sleep(0.05)
            del array
        print(json.dumps([a.metrics.to_dict(), b.metrics.to_dict(), hwm() != before]))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    between, under, high_water_rose = json.loads(done.stdout)
    assert between["rss_increase_mb"] >= 300 * 0.99
    assert not high_water_rose
    assert under["rss_increase_mb"] >= 150 * 0.98


def test_cpu_time_is_near_zero_while_sleeping_and_counts_busy_threads():
    monitor = Monitor()
    with monitor.step("sleep") as sleeping:
        time.sleep(0.2)
    with monitor.step("busy") as busy:
        _burn_cpu(0.25)
    with monitor.step("busy_thread") as threaded:
        worker = threading.Thread(target=_burn_cpu, args=(0.25,))
        worker.start()
        worker.join()
    assert sleeping.metrics.seconds >= 0.2
    assert sleeping.metrics.cpu_seconds < 0.05
    assert 0.25 <= busy.metrics.cpu_seconds <= busy.metrics.seconds + 0.05
    assert threaded.metrics.cpu_seconds >= 0.25


def test_thresholds_alert_the_callback_and_log_a_warning(caplog: pytest.LogCaptureFixture):
    alerts: list[Alert] = []
    monitor = Monitor(
        thresholds={
            "pose": [Threshold("seconds", 1.5), Threshold("peak_rss_mb", 4000.0)],
            "*": [Threshold("rss_increase_mb", 50.0), Threshold("device_peak_mb", 1000.0)],
        },
        on_alert=alerts.append,
    )
    with caplog.at_level(logging.WARNING, logger="mycloset_assets.monitoring"):
        monitor.record(_metrics("pose", 1.9, peak_rss_mb=1450.2, rss_increase_mb=12.0))
        monitor.record(_metrics("tom", 5.0, rss_increase_mb=80.5, device_peak_mb=1200.0))
        monitor.record(_metrics("gmm", 5.0, rss_increase_mb=10.0))
    assert alerts == [
        Alert("pose", "seconds", 1.9, 1.5),
        Alert("tom", "rss_increase_mb", 80.5, 50.0),
        Alert("tom", "device_peak_mb", 1200.0, 1000.0),
    ]
    assert [step.alerts for step in monitor.steps] == [alerts[:1], alerts[1:], []]
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert [record.getMessage() for record in warnings] == [alert.message for alert in alerts]
    assert warnings[0].getMessage() == "step 'pose': seconds = 1.9 is over its threshold 1.5"


def test_a_measured_step_over_its_memory_threshold_alerts():
    alerts: list[Alert] = []
    monitor = Monitor(thresholds={"allocate": [Threshold("rss_increase_mb", 50.0)]}, on_alert=alerts.append)
    with monitor.step("allocate") as step:
        block = _touched_block(100)
        time.sleep(0.03)
        block.close()
    assert alerts == [Alert("allocate", "rss_increase_mb", step.metrics.rss_increase_mb, 50.0)]
    assert alerts[0].value >= 98


def test_fatal_threshold_raises_after_recording_the_step():
    alerts: list[Alert] = []
    monitor = Monitor(thresholds={"slow": [Threshold("seconds", 0.01, fatal=True)]}, on_alert=alerts.append)
    message = "step 'slow': seconds = .* is over its fatal threshold 0.01"
    with pytest.raises(ThresholdExceededError, match=message), monitor.step("slow"):
        time.sleep(0.02)
    assert [step.name for step in monitor.steps] == ["slow"]
    assert alerts == monitor.steps[0].alerts
    assert alerts[0].fatal and alerts[0].value >= 0.02


def test_fatal_threshold_does_not_mask_the_steps_own_exception():
    monitor = Monitor(thresholds={"*": [Threshold("seconds", 0.0, fatal=True)]})
    with pytest.raises(KeyError, match="missing"), monitor.step("lookup"):
        raise KeyError("missing")
    assert monitor.steps[0].error == "KeyError"
    assert monitor.steps[0].alerts[0].metric == "seconds"


def test_decorator_keeps_the_return_value_and_names_the_step():
    monitor = Monitor()

    @monitor.track()
    def double(value: int) -> int:
        """Twice the value."""
        return value * 2

    @monitor.track("named")
    def fail() -> None:
        raise ValueError("bad input")

    assert double(21) == 42
    assert double(5) == 10
    with pytest.raises(ValueError, match="bad input"):
        fail()
    assert double.__name__ == "double" and double.__doc__ == "Twice the value."
    names = [step.name for step in monitor.steps]
    assert names == [double.__qualname__, double.__qualname__, "named"]
    assert [step.error for step in monitor.steps] == [None, None, "ValueError"]


def test_nested_steps_are_recorded_inner_first_and_the_outer_peak_covers_the_inner():
    monitor = Monitor()
    with monitor.step("outer") as outer, monitor.step("inner") as inner:
        block = _touched_block(80)
        time.sleep(0.03)
        block.close()
    assert [step.name for step in monitor.steps] == ["inner", "outer"]
    assert outer.metrics.peak_rss_mb >= inner.metrics.peak_rss_mb
    assert outer.metrics.seconds >= inner.metrics.seconds


def test_json_lines_round_trip(tmp_path: Path):
    stream = tmp_path / "stream.jsonl"
    monitor = Monitor(thresholds={"b": [Threshold("cpu_seconds", 0.5)]}, jsonl_path=stream)
    with monitor.step("a"):
        pass
    monitor.record(_metrics("b", 2.0, cpu_seconds=1.25, device_peak_mb=512.0))
    written = monitor.write_jsonl(tmp_path / "all.jsonl")
    lines = written.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["alerts"] == [
        {"step": "b", "metric": "cpu_seconds", "value": 1.25, "limit": 0.5, "fatal": False}
    ]
    assert read_jsonl(written) == monitor.steps
    assert read_jsonl(stream) == monitor.steps
    assert {"name", "seconds", "cpu_seconds", "peak_rss_mb"} <= json.loads(lines[0]).keys()
    assert monitor.steps[1].to_report() == {"name": "b", "seconds": 2.0, "cpu_seconds": 1.25, "peak_rss_mb": 100.0}


def test_read_jsonl_names_the_bad_line(tmp_path: Path):
    path = tmp_path / "steps.jsonl"
    path.write_text(json.dumps(_metrics("a", 1.0).to_dict()) + "\n{not json\n")
    with pytest.raises(MonitorError, match=r"steps.jsonl:2 is not a step-metrics JSON line"):
        read_jsonl(path)


def test_summary_percentiles_are_exact_on_known_durations():
    monitor = Monitor()
    durations = [float(value) for value in range(20, 0, -1)]
    for seconds in durations:
        monitor.record(_metrics("pose", seconds, cpu_seconds=seconds * 2))
    monitor.record(_metrics("tom", 3.0))
    summary = monitor.summary()
    pose = summary["pose"]
    assert pose["count"] == 20
    assert pose["seconds_p50"] == 10.5
    assert pose["seconds_p95"] == pytest.approx(19.05, abs=1e-12)
    assert pose["seconds_p95"] == pytest.approx(np.percentile(durations, 95), abs=1e-12)
    assert pose["seconds_max"] == 20.0
    assert pose["seconds_mean"] == 10.5
    assert pose["cpu_seconds_p50"] == 21.0
    assert "device_peak_mb_p50" not in pose
    assert summary["tom"]["seconds_p50"] == summary["tom"]["seconds_p95"] == 3.0
    assert percentile([4.0], 95) == 4.0


def test_percentile_refuses_empty_input_and_out_of_range_q():
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="0..100"):
        percentile([1.0], 120)


def test_metadata_is_flat_numbers_and_strings():
    monitor = Monitor(thresholds={"pose": [Threshold("seconds", 1.0)]})
    step = monitor.record(_metrics("pose", 1.23456789, cpu_seconds=2.5, peak_rss_mb=1450.2049))
    monitor.record(_metrics("tom", 0.5, device_peak_mb=300.0))
    assert step.to_metadata() == {
        "seconds": 1.2346,
        "cpu_seconds": 2.5,
        "peak_rss_mb": 1450.2,
        "rss_increase_mb": 0.0,
        "started": "2023-11-14T22:13:20+00:00",
        "alerts": 1,
        "alert_messages": "step 'pose': seconds = 1.235 is over its threshold 1",
    }
    metadata = monitor.to_metadata()
    assert metadata["steps"] == 2 and metadata["alerts"] == 1
    assert metadata["pose.seconds_p50"] == 1.2346
    assert metadata["tom.device_peak_mb_max"] == 300.0
    assert all(isinstance(value, int | float | str) for value in metadata.values())


def test_configuration_errors_name_the_fix():
    with pytest.raises(ValueError, match="unknown threshold metric 'rss'; use one of seconds, cpu_seconds"):
        Threshold("rss", 1.0)
    with pytest.raises(ValueError, match="sampling interval must be positive"):
        Monitor(interval=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peak_is_per_step_and_nested_steps_keep_the_outer_peak():
    monitor = Monitor()
    with monitor.step("outer") as outer:
        with monitor.step("inner") as inner:
            block = torch.empty(64 * MIB, dtype=torch.uint8, device="cuda")
            del block
        with monitor.step("small") as small:
            block = torch.empty(MIB, dtype=torch.uint8, device="cuda")
            del block
    assert inner.metrics.device_peak_mb >= 64
    assert small.metrics.device_peak_mb < inner.metrics.device_peak_mb
    assert outer.metrics.device_peak_mb >= 64
    assert inner.metrics.device.startswith("cuda:")
