"""What is wrong with a Dagster instance file, in one line: an unset variable, a missing extra, a scheme SQLAlchemy
reads as another driver, an unreachable database; else what the instance is (storage, run queue, pools)."""

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

SCALE_EXTRA = "pip install 'mycloset-assets[scale]'"
PSYCOPG2_SCHEME = "postgresql+psycopg2"


class DeploymentError(Exception):
    """The instance file cannot work as it is; the message says what to change."""


def resolve_env(value: Any) -> Any:
    """``value`` with every ``{env: NAME}`` replaced by the variable's value (DeploymentError when unset)."""
    if isinstance(value, Mapping):
        if set(value) == {"env"}:
            name = value["env"]
            if name not in os.environ:
                raise DeploymentError(f"environment variable {name} is not set (the instance file reads it)")
            return os.environ[name]
        return {key: resolve_env(item) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_env(item) for item in value]
    return value


def read_instance_file(path: Path) -> dict[str, Any]:
    """The instance file's settings as a mapping (DeploymentError when missing or not a YAML mapping)."""
    if not path.is_file():
        raise DeploymentError(f"{path} does not exist (give --dagster-yaml or set DAGSTER_HOME)")
    try:
        settings = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise DeploymentError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from error
    if not isinstance(settings, dict):
        raise DeploymentError(f"{path} holds no mapping of instance settings")
    return settings


def postgres_settings(settings: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``postgres_db``/``postgres_url`` block of a Postgres instance file, or None for another storage."""
    storage = settings.get("storage") or {}
    if "postgres" in storage:
        return storage["postgres"]
    for key in ("run_storage", "event_log_storage", "schedule_storage"):
        block = settings.get(key) or {}
        if "postgres" in str(block.get("module", "")):
            return block.get("config") or {}
    return None


def check_postgres(block: Mapping[str, Any]) -> str:
    """The database URL of a Postgres block, once the extra is installed and the scheme names psycopg2."""
    for module in ("dagster_postgres", "psycopg2"):
        if importlib.util.find_spec(module) is None:
            raise DeploymentError(f"missing extra: {module} is not installed ({SCALE_EXTRA})")
    resolved = resolve_env(dict(block))
    if "postgres_url" in resolved:
        url = str(resolved["postgres_url"])
        scheme = url.split("://", 1)[0]
    else:
        database = resolved.get("postgres_db") or {}
        scheme = database.get("scheme", "postgresql")
        url = f"{scheme}://{database.get('hostname', '')}:{database.get('port', 5432)}/{database.get('db_name', '')}"
    if scheme != PSYCOPG2_SCHEME and importlib.util.find_spec("psycopg") is None:
        raise DeploymentError(
            f"wrong scheme {scheme!r}: SQLAlchemy 2.1 reads it as psycopg 3, which is not installed; "
            f"set scheme: {PSYCOPG2_SCHEME}"
        )
    return url.split("@")[-1] if "@" in url else url.split("://", 1)[-1]


def connect(path: Path) -> Any:
    """The Dagster instance of the file, with its storage reached once (DeploymentError when unreachable)."""
    import dagster as dg

    try:
        instance = dg.DagsterInstance.from_config(str(path.parent), path.name)
        instance.get_runs_count()
    except Exception as error:  # any failure to reach the storage is reported in one line
        first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise DeploymentError(f"cannot reach the instance's storage: {first.strip()}") from error
    return instance


def describe(settings: Mapping[str, Any], storage: str, runs: int) -> str:
    """One line: where the storage is, how many runs it holds, the run coordinator and the pools."""
    coordinator = (settings.get("run_coordinator") or {}).get("class", "DefaultRunCoordinator")
    concurrency = settings.get("concurrency") or {}
    queue = (concurrency.get("runs") or {}).get("max_concurrent_runs")
    pools = concurrency.get("pools") or {}
    parts = [f"ok: storage {storage} ({runs} runs)", f"run coordinator {coordinator}"]
    if queue is not None:
        parts.append(f"max {queue} concurrent runs")
    if pools:
        parts.append(f"pools {pools.get('granularity', 'run')} granularity, default limit {pools.get('default_limit')}")
    return "; ".join(parts)


def deploy_check(path: Path) -> str:
    """The one-line verdict on the instance file at ``path``; DeploymentError says what is wrong."""
    settings = read_instance_file(path)
    block = postgres_settings(settings)
    storage = f"postgres {check_postgres(block)}" if block is not None else "sqlite (this machine only)"
    instance = connect(path)
    try:
        return describe(settings, storage, instance.get_runs_count())
    finally:
        instance.dispose()
