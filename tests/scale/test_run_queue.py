"""Four runs submitted at once to the queued run coordinator of ``deploy/postgres/dagster.yaml`` (run queue of two
here), started by the real daemon: the queue holds the rest, and the steps of the ``gpu`` pool (one slot) never
overlap in time, across runs."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

pytestmark = pytest.mark.scale
DEFS = Path(__file__).with_name("pool_defs.py")
BIN = Path(sys.executable).parent
POOL_STEPS = {"parsing", "tryon"}


def step_intervals(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, list[tuple[float, float, str]]]:
    """(start, end, run) of each step, by step key, from the events in the instance's storage."""
    intervals: dict[str, list[tuple[float, float, str]]] = {}
    for run_id in run_ids:
        starts = {}
        for entry in instance.all_logs(run_id):
            kind = entry.dagster_event_type
            if kind == dg.DagsterEventType.STEP_START:
                starts[entry.step_key] = entry.timestamp
            elif kind == dg.DagsterEventType.STEP_SUCCESS:
                intervals.setdefault(entry.step_key, []).append((starts[entry.step_key], entry.timestamp, run_id))
    return intervals


def test_the_queue_and_the_gpu_pool_bound_concurrent_runs(dagster_home, tmp_path):
    settings = yaml.safe_load((dagster_home / "dagster.yaml").read_text())
    settings["concurrency"]["runs"]["max_concurrent_runs"] = 2
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-f", str(DEFS)],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        backfill = [str(BIN / "dagster"), "job", "backfill", "-f", str(DEFS), "-j", "nightly", "--noprompt"]
        subprocess.run([*backfill, "--partitions", "n1,n2,n3,n4"], cwd=tmp_path, check=True, capture_output=True)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            runs = instance.get_runs()
            if len(runs) == 4 and all(run.is_finished for run in runs):
                break
            time.sleep(1)
        runs = instance.get_runs()
        assert len(runs) == 4 and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs), (
            [run.status for run in runs],
            (tmp_path / "daemon.log").read_text()[-3000:],
        )
        run_ids = [run.run_id for run in runs]
        for run_id in run_ids:
            kinds = {entry.dagster_event_type for entry in instance.all_logs(run_id)}
            assert dg.DagsterEventType.RUN_ENQUEUED in kinds and dg.DagsterEventType.RUN_STARTING in kinds
        records = instance.get_run_records()
        spans = sorted((record.start_time, record.end_time) for record in records)
        for start, _ in spans:
            assert sum(1 for s, e in spans if s <= start < e) <= 2, "the queue holds runs beyond two"
        intervals = step_intervals(instance, run_ids)
        pool = sorted(span for key in POOL_STEPS for span in intervals[key])
        assert len(pool) == 8
        for (_, end, _), (start, _, _) in zip(pool, pool[1:], strict=False):
            assert end <= start, "two steps of the gpu pool ran at once"
        assert any(a[1] > b[0] for a, b in zip(spans, spans[1:], strict=False)), "runs did overlap"
    finally:
        instance.dispose()
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
        log.close()
