"""Photos per minute through a Celery worker pool with 1 against 2 ``gpu`` workers, on the same batch.

Run from the repository root: ``PYTHONPATH=. python benchmarks/bench_scale.py [--photos 6]``. Starts PostgreSQL and
Redis on 127.0.0.1 (``tests/scale/servers.py``), synthesizes the CP-VTON checkpoints, and for each pool size: a
fresh database with ``deploy/celery/dagster.yaml``, the analyses and model cards materialised, the workers
(``deploy/celery/worker.yaml``: N on the ``gpu`` queue, one on the default queue), then the person side (photo,
pose, parsing, representation) of every photo as one run per photo, all started at once, each run's steps sent
through Redis. Prints the wall time from the first run's start to the last run's end, photos per minute, the
ratio, and the model loads of each worker process (expected: 2, pose and parsing, whatever the number of photos).
Every process of the benchmark is stopped at the end.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import dagster as dg

from mycloset_assets.checkpoints.synth import write_checkpoint
from mycloset_assets.package_data import manifests_folder
from tests.scale.conftest import postgres_environment
from tests.scale.project import CPVTON_ENTRIES, PERSON_SIDE, lay_out, prepare, run_config
from tests.scale.servers import fresh_database, started_postgres, started_redis
from tests.scale.test_celery import start_worker, wait_for_workers

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RUN = """
import dagster as dg, json, sys
from tests.scale.celery_defs import persons_job
result = dg.execute_job(dg.reconstructable(persons_job), dg.DagsterInstance.get(), run_config=json.loads(sys.argv[2]),
                        tags={"dagster/partition": sys.argv[1]})
sys.exit(0 if result.success else 1)
"""


def synth_file(folder: Path):
    def make(name: str) -> Path:
        manifest = json.loads((manifests_folder() / f"{name}.json").read_text())
        return write_checkpoint(manifest, folder / name / manifest["published_as"]["file"], 0)

    return make


def measure(workers: int, photos: int, postgres, redis: str, zoo, scratch: Path) -> tuple[float, dict[str, int]]:
    """Wall seconds for the batch and the loads of each worker process."""
    root = scratch / f"pool-{workers}"
    layout = lay_out(root, zoo, people=photos, size=(96, 128))
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "celery" / "dagster.yaml", home / "dagster.yaml")
    notes = root / "loads.jsonl"
    with fresh_database(postgres) as database:
        environment = {
            **os.environ,
            **postgres_environment(postgres, database, home),
            **layout.environment(),
            "MYCLOSET_CELERY_BROKER": f"{redis}/0",
            "MYCLOSET_CELERY_BACKEND": f"{redis}/1",
            "MYCLOSET_TEST_LOADS": str(notes),
            "PYTHONPATH": str(ROOT),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        os.environ.update(environment)
        instance = dg.DagsterInstance.from_config(str(home))
        prepare(instance, layout)
        queues = {f"gpu-{index + 1}": "gpu" for index in range(workers)} | {"cpu-1": "dagster"}
        pool = {name: start_worker(name, queue, environment, root / f"{name}.log") for name, queue in queues.items()}
        try:
            wait_for_workers(environment["MYCLOSET_CELERY_BROKER"], pool)
            config = json.dumps(run_config([asset.key.to_user_string() for asset in PERSON_SIDE]))
            runs = [
                subprocess.Popen([sys.executable, "-c", RUN, person, config], env=environment, cwd=ROOT)
                for person in layout.persons
            ]
            assert all(run.wait(timeout=900) == 0 for run in runs), "a run failed"
            persons = set(layout.persons)
            records = [r for r in instance.get_run_records() if r.dagster_run.tags.get("dagster/partition") in persons]
            wall = max(record.end_time for record in records) - min(record.start_time for record in records)
        finally:
            for worker in pool.values():
                os.killpg(worker.pid, signal.SIGTERM)
            for worker in pool.values():
                worker.wait(timeout=60)
            instance.dispose()
    loads: dict[str, int] = defaultdict(int)
    for line in notes.read_text().splitlines():
        note = json.loads(line)
        loads[f"{note['worker']} (pid {note['pid']})"] = max(
            loads[f"{note['worker']} (pid {note['pid']})"], note["loads"]
        )
    return wall, dict(loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=6)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        zoo = synth_file(scratch / "synth")
        for entry in CPVTON_ENTRIES:
            zoo(entry)
        with started_postgres() as postgres, started_redis() as redis:
            figures = {workers: measure(workers, args.photos, postgres, redis, zoo, scratch) for workers in (1, 2)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for workers, (wall, loads) in figures.items():
        print(
            f"{workers} gpu worker(s): {args.photos} photos in {wall:.1f} s = {60 * args.photos / wall:.1f} photos/min"
        )
        for worker, count in sorted(loads.items()):
            print(f"    {worker}: {count} model loads")
    print(f"ratio 2 workers / 1 worker: {figures[1][0] / figures[2][0]:.2f}")


if __name__ == "__main__":
    main()
