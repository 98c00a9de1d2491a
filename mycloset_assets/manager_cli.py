"""``mycloset models ...``: the model manager on the command line (readable tables, ``--json`` for machines).

``add_models_commands(subparsers)`` adds the ``models`` command to the ``mycloset`` parser; every handler
has the ``run(args, parser) -> exit status`` signature of ``cli.py`` and reports errors itself (status 1). The
model manager (and with it torch) is imported when a handler runs, not when the parser is built.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .checkpoints.manager import DependencyReport, ModelManager, ModelVersion, VerifyReport

Handler = Callable[[argparse.Namespace, argparse.ArgumentParser], int]


def _table(header: Sequence[str], rows: list[list[str]]) -> str:
    widths = [max(len(title), *(len(row[i]) for row in rows)) if rows else len(title) for i, title in enumerate(header)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(["  ".join(t.ljust(w) for t, w in zip(header, widths, strict=True)).rstrip(), *lines])


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=1) if args.json else text)


def _manager(args: argparse.Namespace) -> ModelManager:
    from .checkpoints.manager import ModelManager

    return ModelManager(args.home)


def _summary(model: ModelVersion) -> str:
    return f"{model.label} ({model.entry}, sha256 {model.sha256[:12]}, {_size(model.size)})"


def _versions_table(models: list[ModelVersion], *, with_name: bool) -> str:
    header = ["NAME"] * with_name + ["VERSION", "ACTIVE", "ENTRY", "FAMILY", "SHA256", "SIZE", "CREATED", "SOURCE"]
    rows = [
        [model.name] * with_name
        + [
            str(model.version),
            "*" if model.active else "",
            model.entry,
            model.family,
            model.sha256[:12],
            _size(model.size),
            model.created,
            model.source,
        ]
        for model in models
    ]
    return _table(header, rows)


def _register(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    manager = _manager(args)
    model = manager.register(args.path, args.name, allow_partial=args.allow_partial)
    _print(args, model.to_dict(), f"registered {_summary(model)}{_companion_note(manager, model)}")
    return 0


def _update(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    manager = _manager(args)
    model = manager.update(args.name, args.path, allow_partial=args.allow_partial)
    _print(args, model.to_dict(), f"{_summary(model)} is now active{_companion_note(manager, model)}")
    return 0


def _companion_note(manager: ModelManager, model: ModelVersion) -> str:
    missing = next((item.missing for item in manager.dependencies().models if item.model.name == model.name), ())
    return f"\nnote: {model.entry} also needs {', '.join(missing)}; register it too" if missing else ""


def _list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    models = _manager(args).active()
    _print(args, [model.to_dict() for model in models], _versions_table(models, with_name=True))
    return 0


def _versions(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    models = _manager(args).versions(args.name)
    _print(args, [model.to_dict() for model in models], _versions_table(models, with_name=False))
    return 0


def _rollback(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    model = _manager(args).rollback(args.name, args.to)
    _print(args, model.to_dict(), f"{_summary(model)} is now active")
    return 0


def _backup(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    backup = _manager(args).backup(args.name, args.destination, args.version)
    _print(args, backup.to_dict(), f"wrote {backup.file} and {backup.card}")
    return 0


def _remove(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    model = _manager(args).remove(args.name, args.version)
    _print(args, model.to_dict(), f"removed {_summary(model)}")
    return 0


def _verify_text(report: VerifyReport) -> str:
    rows = [
        [check.name, str(check.version), check.status, check.sha256[:12], (check.actual or "")[:12]]
        for check in report.checks
    ]
    lines = [_table(["NAME", "VERSION", "STATUS", "SHA256", "FOUND"], rows)]
    done = "removed" if report.cleaned else "left (remove with --clean)"
    if report.orphans:
        kept = "left (rebuild with --rebuild, or remove with --clean --force)"
        lines.append(f"{len(report.orphans)} stored file(s) no version names, {kept}: {', '.join(report.orphans)}")
    if report.stale:
        lines.append(f"{len(report.stale)} staging folder(s) of killed writes, {done}: {', '.join(report.stale)}")
    problems = report.problems
    lines.append(
        f"{len(problems)} of {len(report.checks)} stored file(s) damaged or missing; restore them from a backup"
        if problems
        else f"all {len(report.checks)} stored file(s) match their sha256"
    )
    return "\n".join(lines)


def _verify(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.force and not args.clean:
        parser.error("--force only goes with --clean")
    manager = _manager(args)
    if args.rebuild:
        models = manager.rebuild()
        if not args.json:
            print(f"rebuilt the catalogue {manager.catalogue}: {len(models)} version(s)")
    report = manager.verify(args.name, clean=args.clean, force=args.force)
    _print(args, report.to_dict(), _verify_text(report))
    return 0 if report.ok else 1


def _deps_text(report: DependencyReport) -> str:
    from .checkpoints.pipelines import describe_missing

    rows = [
        [
            item.model.label,
            item.model.entry,
            ", ".join(f"{entry} ({item.provided_by.get(entry, 'missing')})" for entry in item.requires) or "-",
        ]
        for item in report.models
    ]
    lines = [_table(["MODEL", "ENTRY", "REQUIRES (PROVIDED BY)"], rows), ""]
    for status in report.pipelines.values():
        if status.complete:
            chosen = ", ".join(f"{role}={entry}" for role, entry in status.roles.items())
            lines.append(f"{status.pipeline}: complete ({chosen})")
        else:
            lines.append(describe_missing(status))
    lines.append(f"best pipeline: {report.best or 'none is complete'}")
    for step in report.steps.values():
        chosen = ", ".join(f"{role}={entry}" for role, entry in step.roles.items())
        wanted = ", ".join(f"{role} ({' or '.join(entries)})" for role, entries in step.missing.items())
        state = "complete" if step.complete else f"needs {wanted}"
        lines.append(f"step {step.step}: {state}{f' (uses {chosen})' if chosen else ''}")
    return "\n".join(lines)


def _deps(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    report = _manager(args).dependencies()
    _print(args, report.to_dict(), _deps_text(report))
    return 0


def _guarded(handler: Handler) -> Handler:
    def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        from .checkpoints.errors import CheckpointError
        from .checkpoints.manager import RegistrationRefusedError

        try:
            return handler(args, parser)
        except RegistrationRefusedError as exc:
            if args.json:
                print(json.dumps({"error": str(exc), "analysis": exc.analysis.to_dict()}, indent=1))
            print(f"mycloset: error: {exc}", file=sys.stderr)
        except (CheckpointError, OSError, ValueError) as exc:
            print(f"mycloset: error: {exc}", file=sys.stderr)
        return 1

    return run


def add_models_commands(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``models register|list|versions|update|rollback|backup|remove|verify|deps`` to ``subparsers``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", metavar="DIR", help="the model store (default: $MYCLOSET_HOME or ~/.mycloset)")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models = subparsers.add_parser("models", help="register, version, back up and verify checkpoints")
    commands = models.add_subparsers(dest="models_command", required=True)

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        command.set_defaults(run=_guarded(handler))
        return command

    register = add("register", _register, "analyse a checkpoint and store it as version 1 of a name")
    register.add_argument("path", metavar="PATH")
    register.add_argument("--name", help="the model's name (default: its registry entry id)")
    register.add_argument("--allow-partial", action="store_true", help="accept a 'partial' analysis")

    add("list", _list, "the active version of every model")

    versions = add("versions", _versions, "every version of a model")
    versions.add_argument("name", metavar="NAME")

    update = add("update", _update, "store a new version of a model and make it active (the old one is kept)")
    update.add_argument("name", metavar="NAME")
    update.add_argument("path", metavar="PATH")
    update.add_argument("--allow-partial", action="store_true", help="accept a 'partial' analysis")

    rollback = add("rollback", _rollback, "make an earlier version active (default: the one before)")
    rollback.add_argument("name", metavar="NAME")
    rollback.add_argument("--to", type=int, metavar="VERSION")

    backup = add("backup", _backup, "export a version (default: the active one) and its JSON card to a folder")
    backup.add_argument("name", metavar="NAME")
    backup.add_argument("destination", metavar="DIR")
    backup.add_argument("--version", type=int)

    remove = add("remove", _remove, "delete a version that no active model needs")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("version", type=int, metavar="VERSION")

    verify = add("verify", _verify, "re-hash stored files (exit status 1 when one is damaged or missing)")
    verify.add_argument("name", nargs="?", metavar="NAME")
    verify.add_argument("--clean", action="store_true", help="remove stale stagings of killed writes")
    verify.add_argument(
        "--force", action="store_true", help="with --clean, also delete stored files the catalogue does not name"
    )
    verify.add_argument(
        "--rebuild",
        action="store_true",
        help="rebuild a missing or damaged catalogue from the stored files' version cards first",
    )

    add("deps", _deps, "companions each active model needs, and which pipelines are complete")
    return models
