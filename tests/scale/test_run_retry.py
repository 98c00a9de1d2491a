"""Dagster's run retries on the instance of ``deploy/postgres/dagster.yaml``, with the real daemon and the default
run launcher: a ranged run of the person side (two people) is submitted to the queue; while its ``pose`` step
runs, its run worker (the run's process and the step processes under it) is killed. The code server that
started it marks the run failed, the daemon frees the ``gpu`` slot the dead run held and retries the run from
its failed steps, and the retry succeeds: every asset of each person is materialised exactly once across the two
runs, and stored once.

The only change to the operator's file is the one an operator would make to see it sooner: run monitoring
polls every 2 s and frees a finished run's slots after 5 s (``poll_interval_seconds``,
``free_slots_after_run_end_seconds``)."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import psutil
import pytest
import yaml

from .project import PERSON_SIDE, lay_out, prepare

pytestmark = pytest.mark.scale
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEFS = ["-m", "tests.scale.retry_defs"]
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
STORED = {
    "person_image": ["png"],
    "pose": ["json"],
    "human_parsing": ["png", "colour.png"],
    "person_representation": ["npz"],
}


def steps(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> dict[str, int]:
    """Step key -> process id of the run's events of ``kind``."""
    return {entry.step_key: entry.dagster_event.pid for entry in instance.all_logs(run_id, of_type=kind)}


def run_worker(instance: dg.DagsterInstance, run_id: str) -> psutil.Process | None:
    """The run's process, as its run worker reports it when it starts."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        if entry.message.startswith("Started process for run"):
            return psutil.Process(int(entry.dagster_event.engine_event_data.metadata["pid"].value))
    return None


def kill_during(instance: dg.DagsterInstance, run_id: str, step: str, seconds: float = 180.0) -> list[int]:
    """SIGKILL the run worker of ``run_id`` and every process under it as soon as ``step`` has started; the ids
    killed, the run's process first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if step in steps(instance, run_id, dg.DagsterEventType.STEP_START):
            worker = run_worker(instance, run_id)
            assert worker is not None, "the run started a step without reporting its process"
            tree = [worker, *worker.children(recursive=True)]
            for process in tree:
                process.kill()
            return [process.pid for process in tree]
        time.sleep(0.1)
    raise TimeoutError(f"step {step} of run {run_id} did not start in {seconds} s")


def wait_for_runs(instance: dg.DagsterInstance, count: int, seconds: float = 180.0) -> list[dg.DagsterRun]:
    """The runs of the ``persons`` job, oldest first, once ``count`` of them have finished."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        runs = instance.get_runs(dg.RunsFilter(job_name="persons"))
        if len(runs) == count and all(run.is_finished for run in runs):
            return runs[::-1]
        time.sleep(1)
    raise TimeoutError(f"{[(run.run_id, run.status) for run in runs]} after {seconds} s")


def test_a_run_whose_worker_is_killed_is_retried_and_stores_each_asset_once(
    dagster_home, tmp_path, synth_file, monkeypatch
):
    settings = yaml.safe_load((dagster_home / "dagster.yaml").read_text())
    assert settings["run_retries"]["enabled"] and settings["run_monitoring"]["free_slots_after_run_end_seconds"]
    settings["run_monitoring"].update(poll_interval_seconds=2, free_slots_after_run_end_seconds=5)
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    layout = lay_out(tmp_path / "project", synth_file, people=2, size=(384, 512))
    for name, value in {**layout.environment(), "PYTHONPATH": str(ROOT)}.items():
        monkeypatch.setenv(name, value)
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    prepare(instance, layout)
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", *DEFS],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        parent = str(uuid.uuid4())
        tags = dict(zip(RANGE, (layout.persons[0], layout.persons[-1]), strict=True))
        config = {"ops": {"human_parsing": {"config": {"parsing_size": [64, 64], "max_side": 64}}}}
        launch = [str(BIN / "dagster"), "job", "launch", *DEFS, "-j", "persons", "--run-id", parent]
        arguments = ["--tags", json.dumps(tags), "--config-json", json.dumps(config)]
        subprocess.run([*launch, *arguments], cwd=tmp_path, check=True, capture_output=True, timeout=120)
        killed = kill_during(instance, parent, "pose")
        held = instance.event_log_storage.get_concurrency_info("gpu").claimed_slots
        assert [(slot.run_id, slot.step_key) for slot in held] == [(parent, "pose")], "the dead run holds the slot"
        first, retry = wait_for_runs(instance, 2)
        daemon_log = (tmp_path / "daemon.log").read_text()[-3000:]

        assert first.run_id == parent and first.status == dg.DagsterRunStatus.FAILURE
        kinds = {entry.dagster_event_type for entry in instance.all_logs(parent)}
        assert {dg.DagsterEventType.RUN_ENQUEUED, dg.DagsterEventType.RUN_FAILURE} <= kinds
        messages = [entry.message for entry in instance.all_logs(parent, of_type=dg.DagsterEventType.ENGINE_EVENT)]
        assert f"Run execution process for {parent} was terminated by signal 9 (SIGKILL)" in " ".join(messages)
        assert steps(instance, parent, dg.DagsterEventType.STEP_START)["pose"] in killed
        done_first = steps(instance, parent, dg.DagsterEventType.STEP_SUCCESS)
        assert "pose" not in done_first and "person_image" in done_first, "pose was killed while running"

        assert retry.status == dg.DagsterRunStatus.SUCCESS, daemon_log
        assert retry.tags["dagster/parent_run_id"] == parent and retry.tags["dagster/retry_number"] == "1"
        assert retry.root_run_id == parent and retry.tags[RANGE[0]] == layout.persons[0]
        done_retry = steps(instance, retry.run_id, dg.DagsterEventType.STEP_SUCCESS)
        assert set(done_retry) == {asset.key.to_user_string() for asset in PERSON_SIDE} - set(done_first)
        assert instance.event_log_storage.get_concurrency_info("gpu").claimed_slots == []

        runs = {first.run_id: done_first, retry.run_id: done_retry}
        for asset in PERSON_SIDE:
            records = instance.fetch_materializations(asset.key, limit=10).records
            name = asset.key.to_user_string()
            assert sorted(record.partition_key for record in records) == sorted(layout.persons), name
            assert all(name in runs[record.run_id] for record in records), name
        stored = sorted(
            path.relative_to(layout.store).as_posix() for name in STORED for path in (layout.store / name).iterdir()
        )
        expected = [
            f"{name}/{person}.{ext}" for name, exts in STORED.items() for person in layout.persons for ext in exts
        ]
        assert stored == sorted(expected)
    finally:
        instance.dispose()
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
        log.close()
