"""A Celery worker pool on Redis: two workers on the ``gpu`` queue, one on the default queue, started with the
operator's ``deploy/celery/worker.yaml``. Three runs of the person side: every network step runs on a ``gpu``
worker, every other step on the default one, and each worker process loads each network once across the runs.
A worker process killed (SIGKILL) in the middle of a step: the broker hands the step to another process (late
acknowledgement), the run finishes, and each asset is stored once."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import dagster as dg
import pytest
from celery import Celery

from .celery_defs import persons_job
from .project import NETWORK_STEPS, PERSON_SIDE, lay_out, prepare, run_config

pytestmark = pytest.mark.scale
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKERS = {"gpu-1": "gpu", "gpu-2": "gpu", "cpu-1": "dagster"}


def start_worker(name: str, queue: str, environment: dict[str, str], log: Path) -> subprocess.Popen:
    command = [str(BIN / "dagster-celery"), "worker", "start", "-y", str(ROOT / "deploy" / "celery" / "worker.yaml")]
    return subprocess.Popen(
        [*command, "-A", "dagster_celery.app", "-q", queue, "-n", name, "--loglevel", "WARNING"],
        env={**environment, "MYCLOSET_TEST_WORKER": name},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for_workers(broker: str, workers: dict[str, subprocess.Popen], seconds: float = 120.0) -> None:
    app = Celery(broker=broker)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0)) >= len(workers):
            return
        stopped = [name for name, worker in workers.items() if worker.poll() is not None]
        assert not stopped, f"Celery workers {stopped} stopped (see their logs)"
        time.sleep(1)
    raise TimeoutError(f"fewer than {len(workers)} Celery workers answered after {seconds} s")


@pytest.fixture
def worker_pool(request, dagster_home, redis_url, tmp_path, synth_file, monkeypatch):
    layout = lay_out(tmp_path / "project", synth_file, **getattr(request, "param", {"people": 3}))
    notes = tmp_path / "loads.jsonl"
    variables = {
        **layout.environment(),
        "MYCLOSET_CELERY_BROKER": f"{redis_url}/0",
        "MYCLOSET_CELERY_BACKEND": f"{redis_url}/1",
        "MYCLOSET_TEST_LOADS": str(notes),
        "PYTHONPATH": str(ROOT),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    prepare(instance, layout)
    workers = {
        name: start_worker(name, queue, dict(os.environ), tmp_path / f"{name}.log") for name, queue in WORKERS.items()
    }
    try:
        wait_for_workers(variables["MYCLOSET_CELERY_BROKER"], workers)
        yield instance, layout, notes, workers
    finally:
        for worker in workers.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers.values():
            worker.wait(timeout=60)
        instance.dispose()


def step_pids(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    return {
        entry.step_key: entry.dagster_event.pid
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
    }


def test_network_steps_run_on_the_gpu_workers_each_loading_each_network_once(worker_pool):
    instance, layout, notes, _ = worker_pool
    job = dg.reconstructable(persons_job)
    names = [asset.key.to_user_string() for asset in PERSON_SIDE]
    pids: dict[str, set[int]] = defaultdict(set)
    for person in layout.persons:
        result = dg.execute_job(
            job, instance, run_config=run_config(names), tags={"dagster/partition": person}, raise_on_error=True
        )
        assert result.success
        for step, pid in step_pids(instance, result.run_id).items():
            pids[step].add(pid)
    assert set(pids) == {"person_image", "pose", "human_parsing", "person_representation"}

    lines = [json.loads(line) for line in notes.read_text().splitlines()]
    gpu_pids = {line["pid"] for line in lines if line["worker"].startswith("gpu-")}
    assert {line["worker"] for line in lines} <= {"gpu-1", "gpu-2"}, "networks load on gpu workers only"
    network_pids = set().union(*(pids[step] for step in NETWORK_STEPS if step in pids))
    assert network_pids == gpu_pids
    assert not (pids["person_image"] | pids["person_representation"]) & gpu_pids, "photo steps on the default queue"
    assert len(lines) == 2 * len(layout.persons), "pose and parsing once per run"
    by_pid: dict[int, list[dict]] = defaultdict(list)
    for line in lines:
        by_pid[line["pid"]].append(line)
    for pid, noted in by_pid.items():
        networks = {line["network"] for line in noted}
        assert noted[-1]["loads"] == len(networks), f"worker process {pid} loaded a network twice"
    assert any(len(noted) > noted[-1]["loads"] for noted in by_pid.values()), "a worker reused a loaded network"
    for person in layout.persons:
        assert (layout.store / "person_representation" / f"{person}.npz").is_file()


def kill_the_pose_step(dagster_home: Path, killed: list[int], seconds: float = 180.0) -> None:
    """SIGKILL the Celery worker process running the first ``pose`` step, a moment after the step started."""
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and not killed:
            for run in instance.get_runs():
                pids = step_pids(instance, run.run_id)
                if "pose" in pids:
                    time.sleep(0.5)
                    os.kill(pids["pose"], signal.SIGKILL)
                    killed.append(pids["pose"])
                    return
            time.sleep(0.1)
    finally:
        instance.dispose()


@pytest.mark.parametrize("worker_pool", [{"people": 1, "size": (384, 512)}], indirect=True)
def test_a_run_whose_worker_is_killed_finishes_and_stores_each_asset_once(worker_pool, dagster_home):
    instance, layout, _, workers = worker_pool
    (person,) = layout.persons
    killed: list[int] = []
    killer = threading.Thread(target=kill_the_pose_step, args=(dagster_home, killed))
    killer.start()
    config = run_config(["human_parsing"])  # pose at its default size: long enough to be killed in the middle
    result = dg.execute_job(
        dg.reconstructable(persons_job), instance, run_config=config, tags={"dagster/partition": person}
    )
    killer.join()
    assert killed, "the pose step was not seen running"
    assert result.success
    starts = [
        entry.dagster_event.pid
        for entry in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_START)
        if entry.step_key == "pose"
    ]
    assert starts[0] == killed[0] and len(starts) == 2 and starts[1] != killed[0], starts
    for asset in PERSON_SIDE:
        records = instance.fetch_materializations(asset.key, limit=10).records
        assert [record.partition_key for record in records] == [person], asset.key
    stored = sorted(path.relative_to(layout.store).as_posix() for path in layout.store.rglob(f"{person}.*"))
    expected = [
        f"{asset.key.to_user_string()}/{person}.{ext}"
        for asset, ext in zip(PERSON_SIDE, ("png", "json", "png", "npz"), strict=True)
    ]
    assert stored == sorted([*expected, f"human_parsing/{person}.colour.png"])
    assert all(worker.poll() is None for worker in workers.values()), "Celery replaced the killed process"
