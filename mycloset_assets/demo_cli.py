"""``mycloset demo``: the demo's command line; ``demo.py`` (which imports Dagster) is imported when it runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def _demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .demo import run_demo

    wheel = Path(args.mediapipe_wheel) if args.mediapipe_wheel else None
    return run_demo(
        Path(args.home),
        host=args.host,
        port=args.port,
        start=not args.no_start,
        mediapipe=not args.no_mediapipe,
        mediapipe_wheel=wheel,
    )


def add_demo_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``demo [--home DIR] [--host HOST] [--port PORT] [--no-start] [--mediapipe-wheel PATH]
    [--no-mediapipe]``."""
    command = subparsers.add_parser(
        "demo", help="synthesized zoo + bundled photos in the inbox + the Dagster UI (dagster dev)"
    )
    command.add_argument("--home", default="mycloset-demo", help="folder for zoo/, inbox/, storage/, dagster_home/")
    command.add_argument("--host", default="127.0.0.1")
    command.add_argument("--port", type=int, default=3000)
    command.add_argument("--no-start", action="store_true", help="lay everything out and print the command only")
    command.add_argument(
        "--mediapipe-wheel",
        metavar="PATH",
        help="a downloaded mediapipe-0.10.21 wheel to take the real MediaPipe models from (default: pip download)",
    )
    command.add_argument(
        "--no-mediapipe", action="store_true", help="do not fetch the real MediaPipe models (synthesized weights only)"
    )
    command.set_defaults(run=_demo)
    return command
