"""Real servers on 127.0.0.1 for the ``scale`` tests: PostgreSQL and Redis are started here when the environment
names none (``MYCLOSET_TEST_PG`` = ``host:port:user``, ``MYCLOSET_TEST_REDIS`` = ``redis://...``), each in a
private folder on a free port, and stopped at the end; a server that was already there is only used. Each test
gets its own database and its own ``DAGSTER_HOME`` holding ``deploy/postgres/dagster.yaml``."""

import contextlib
import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .servers import MissingServerError, Postgres, fresh_database, started_postgres, started_redis

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SCALE_EXTRA = ("dagster_postgres", "dagster_celery", "dagster_k8s", "psycopg2")
collect_ignore_glob = [] if all(importlib.util.find_spec(name) for name in SCALE_EXTRA) else ["test_*.py"]
"""Without the ``scale`` extra (``pip install -e '.[scale]'``) these tests are not collected."""


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    given = os.environ.get("MYCLOSET_TEST_PG")
    if given:
        host, port, user = given.split(":")
        yield Postgres(host, int(port), user)
        return
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(started_postgres())
        except MissingServerError as error:
            pytest.skip(str(error))
        yield server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    given = os.environ.get("MYCLOSET_TEST_REDIS")
    if given:
        yield given
        return
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(started_redis())
        except MissingServerError as error:
            pytest.skip(str(error))
        yield url


@pytest.fixture
def database(postgres: Postgres) -> Iterator[str]:
    """A fresh database on the server, dropped afterwards."""
    with fresh_database(postgres) as name:
        yield name


def postgres_environment(postgres: Postgres, database: str, home: Path) -> dict[str, str]:
    """The variables ``deploy/postgres/dagster.yaml`` reads, and ``DAGSTER_HOME``."""
    return {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USER": postgres.user,
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": database,
    }


@pytest.fixture
def dagster_home(tmp_path: Path, postgres: Postgres, database: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``DAGSTER_HOME`` with the operator's ``deploy/postgres/dagster.yaml`` and its variables set (child
    processes, the daemon and the workers, inherit them)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "postgres" / "dagster.yaml", home / "dagster.yaml")
    for name, value in postgres_environment(postgres, database, home).items():
        monkeypatch.setenv(name, value)
    return home
