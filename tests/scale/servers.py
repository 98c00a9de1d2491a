"""PostgreSQL and Redis on 127.0.0.1 for the scale tests and benchmark: each started in a private folder on a free
port and stopped (with its folder) when the context ends."""

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


class MissingServerError(RuntimeError):
    """A server's program is not installed; the message names the package."""


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
        raise MissingServerError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found


def _as_postgres(command: list[str]) -> list[str]:
    """``command`` run as the ``postgres`` user when we are root (initdb refuses root)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def started_postgres(fsync: bool = False) -> Iterator[Postgres]:
    """A private PostgreSQL cluster (trust authentication; no fsync unless asked, as for tests), as the
    ``postgres`` user when root."""
    folder = Path(tempfile.mkdtemp(prefix="mycloset-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(_as_postgres([_postgres_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]), **run)
    options = f"-p {port} -k {folder} -c listen_addresses={HOST} -c fsync={'on' if fsync else 'off'}"
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


@contextlib.contextmanager
def started_redis() -> Iterator[str]:
    """A Redis server without persistence; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise MissingServerError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    command = [binary, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"redis://{HOST}:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextlib.contextmanager
def fresh_database(postgres: Postgres) -> Iterator[str]:
    """A new database on the server, dropped afterwards."""
    name = f"mycloset_{os.urandom(6).hex()}"
    connection = postgres.connect()
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    connection.close()
    try:
        yield name
    finally:
        connection = postgres.connect()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.close()
