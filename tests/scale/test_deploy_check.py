"""``mycloset deploy-check`` on the operator's ``deploy/postgres/dagster.yaml``: a real server, then each way it
goes wrong, each said in one line."""

import sys

import pytest
import yaml

from mycloset_assets.cli import main

from .servers import free_port

pytestmark = pytest.mark.scale


def check(path, capsys) -> tuple[int, str]:
    code = main(["deploy-check", "--dagster-yaml", str(path)])
    out = capsys.readouterr()
    return code, (out.out + out.err).strip()


def rewrite(home, change) -> None:
    settings = yaml.safe_load((home / "dagster.yaml").read_text())
    change(settings["storage"]["postgres"]["postgres_db"])
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings))


def test_a_reachable_postgres_instance_is_described(dagster_home, postgres, database, capsys):
    code, said = check(dagster_home / "dagster.yaml", capsys)
    assert code == 0
    assert said == (
        f"ok: storage postgres {postgres.host}:{postgres.port}/{database} (0 runs); "
        "run coordinator QueuedRunCoordinator; max 4 concurrent runs; pools op granularity, default limit 1"
    )


def test_an_unreachable_database_is_one_line(dagster_home, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_PG_PORT", str(free_port()))
    code, said = check(dagster_home / "dagster.yaml", capsys)
    assert code == 1 and "\n" not in said
    assert said.startswith("error: cannot reach the instance's storage: ")
    assert "Connection refused" in said or "too many retries" in said


def test_a_plain_postgresql_scheme_is_refused_with_the_fix(dagster_home, capsys):
    rewrite(dagster_home, lambda database: database.pop("scheme"))
    code, said = check(dagster_home / "dagster.yaml", capsys)
    assert code == 1
    assert said == (
        "error: wrong scheme 'postgresql': SQLAlchemy 2.1 reads it as psycopg 3, which is not installed; "
        "set scheme: postgresql+psycopg2"
    )


def test_a_missing_extra_and_an_unset_variable_are_named(dagster_home, monkeypatch, capsys):
    monkeypatch.delenv("DAGSTER_PG_HOST")
    assert check(dagster_home / "dagster.yaml", capsys) == (
        1,
        "error: environment variable DAGSTER_PG_HOST is not set (the instance file reads it)",
    )
    monkeypatch.setitem(sys.modules, "dagster_postgres", None)
    assert check(dagster_home / "dagster.yaml", capsys) == (
        1,
        "error: missing extra: dagster_postgres is not installed (pip install 'mycloset-assets[scale]')",
    )
