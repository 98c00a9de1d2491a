"""Real servers on 127.0.0.1 for the ``scale`` tests: PostgreSQL and Redis are started here when the environment
names none (``MYCLOSET_TEST_PG`` = ``host:port:user``, ``MYCLOSET_TEST_REDIS`` = ``redis://...``), each in a
private folder on a free port, and stopped at the end; a server that was already there is only used. Each test
gets its own database and its own ``DAGSTER_HOME`` holding ``deploy/postgres/dagster.yaml``."""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str

    def connect(self, database: str = "postgres"):
        import psycopg2

        connection = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=database)
        connection.autocommit = True
        return connection


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {HOST}:{port} after {seconds} s")


def _postgres_binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        pytest.skip(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found


def _as_postgres(command: list[str]) -> list[str]:
    """``command`` run as the ``postgres`` user when we are root (initdb refuses root)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    given = os.environ.get("MYCLOSET_TEST_PG")
    if given:
        host, port, user = given.split(":")
        yield Postgres(host, int(port), user)
        return
    folder = Path(tempfile.mkdtemp(prefix="mycloset-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(_as_postgres([_postgres_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]), **run)
    options = f"-p {port} -k {folder} -c listen_addresses={HOST} -c fsync=off"
    pg_ctl = _postgres_binary("pg_ctl")
    subprocess.run(
        _as_postgres([pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"]), **run
    )
    try:
        wait_for_port(port)
        yield Postgres(HOST, port, "postgres")
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    given = os.environ.get("MYCLOSET_TEST_REDIS")
    if given:
        yield given
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    command = [binary, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"redis://{HOST}:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def database(postgres: Postgres) -> Iterator[str]:
    """A fresh database on the server, dropped afterwards."""
    name = f"mycloset_{uuid.uuid4().hex[:12]}"
    connection = postgres.connect()
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    connection.close()
    yield name
    connection = postgres.connect()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    connection.close()


@pytest.fixture
def dagster_home(tmp_path: Path, postgres: Postgres, database: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``DAGSTER_HOME`` with the operator's ``deploy/postgres/dagster.yaml`` and its variables set (child
    processes, the daemon and the workers, inherit them)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "postgres" / "dagster.yaml", home / "dagster.yaml")
    variables = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USER": postgres.user,
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": database,
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return home
