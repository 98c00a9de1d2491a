"""``mycloset deploy-check``: load a Dagster instance file, connect, and say in one line what is wrong (or what
the instance is); ``deploy_check.py`` (which imports Dagster when it connects) is imported when it runs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _default_instance_file() -> str | None:
    home = os.environ.get("DAGSTER_HOME")
    return str(Path(home) / "dagster.yaml") if home else None


def _deploy_check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .deploy_check import DeploymentError, deploy_check

    if args.dagster_yaml is None:
        parser.error("give --dagster-yaml PATH or set DAGSTER_HOME")
    try:
        print(deploy_check(Path(args.dagster_yaml)))
    except DeploymentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def add_deploy_commands(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``deploy-check [--dagster-yaml PATH]``."""
    command = subparsers.add_parser(
        "deploy-check", help="load a dagster.yaml, connect to its storage, say what is wrong in one line"
    )
    command.add_argument(
        "--dagster-yaml",
        default=_default_instance_file(),
        help="the instance file (default: $DAGSTER_HOME/dagster.yaml), e.g. deploy/postgres/dagster.yaml",
    )
    command.set_defaults(run=_deploy_check)
    return command
