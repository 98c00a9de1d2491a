"""A Celery worker pool on Redis: two workers on the ``gpu`` queue, one on the default queue, started with the
operator's ``deploy/celery/worker.yaml``. Three runs of the person side: every network step runs on a ``gpu``
worker, every other step on the default one, and each worker process loads each network once across the runs."""

import contextlib
import json
import os
import signal
import subprocess
import sys
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
def worker_pool(dagster_home, redis_url, tmp_path, synth_file, monkeypatch):
    layout = lay_out(tmp_path / "project", synth_file, people=3)
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
