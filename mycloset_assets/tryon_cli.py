"""``mycloset try-on PERSON GARMENT -o OUTDIR``: one try-on with every intermediate written as a PNG.

``add_tryon_command(subparsers)`` adds the command to the ``mycloset`` parser; its handler has the
``run(args, parser) -> exit status`` signature of ``cli.py`` and imports the engine (and torch) when it runs.
Progress goes to stderr as each step starts; stdout gets a readable summary, or with ``--json`` exactly the
report.json object. report.json adds ``pool``: the model pool's ``loads``, ``releases``, ``budget_bytes``
(``--pool-budget-mb``; null: no limit) and ``peak_resident_bytes``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PIPELINE_CHOICES = ("cpvton", "vitonhd")
"""``--pipeline``'s choices: ``checkpoints.pipelines.PIPELINES``, named here so that building the parser imports no
torch (a test keeps the two equal)."""
POSE_ESTIMATOR_CHOICES = ("auto", "openpose", "blazepose")
"""``--pose-estimator``'s choices: ``engine.options.POSE_ESTIMATOR_CHOICES`` (a test keeps the two equal)."""
DEFAULT_MAX_SIDE = 1024
"""``--max-side``'s default: ``TryOnOptions.max_side`` (a test keeps the two equal)."""

MB = 2**20


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(title), *(len(row[i]) for row in rows)) if rows else len(title) for i, title in enumerate(header)]
    lines = [header, *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _optional_detail(record: dict[str, Any]) -> str:
    if not record["ran"]:
        return record["reason"]
    parts = [f"{side}: {info['reason']}" for side in ("garment", "clothing") if (info := record.get(side))]
    if "person_fraction" in record:
        parts.append(
            f"person {record['person_fraction']:.1%} of the photo, IoU with the parsing {record['parsing_iou']}"
        )
    if "box" in record:
        parts.append(f"face box {record['box']}")
    if record.get("skipped_figures"):
        parts.append(f"not computed: {', '.join(record['skipped_figures'])}")
    return "; ".join(parts)


def summary(report: dict[str, Any], folder: Path, notes: tuple[str, ...], quality: dict[str, Any] | None = None) -> str:
    """The readable form of a report: models, skipped files, steps, optional steps, quality figures, outputs
    and notes."""
    from .engine.outputs import QUALITY_NAME, REPORT_NAME

    models = [[role, m["entry"], m["sha256"][:12], m["path"]] for role, m in report["models"].items()]
    steps = [
        [s["name"], f"{s['seconds']:.3f}", f"{s['cpu_seconds']:.3f}", f"{s['peak_rss_mb']:.1f}"]
        for s in report["steps"]
    ]
    parts = [
        f"pipeline: {report['pipeline']}",
        *([f"pose estimator: {report['pose_estimator']}"] if report.get("pose_estimator") else []),
        "",
        _table(["ROLE", "ENTRY", "SHA256", "PATH"], models),
    ]
    if report["skipped"]:
        parts += ["", _table(["SKIPPED", "WHY"], [[path, why] for path, why in report["skipped"].items()])]
    parts += ["", _table(["STEP", "SECONDS", "CPU S", "PEAK RSS MB"], steps)]
    optional = [
        [name, "yes" if r["ran"] else "no", _optional_detail(r)] for name, r in report["optional_steps"].items()
    ]
    if optional:
        parts += ["", _table(["OPTIONAL STEP", "RAN", "DETAIL"], optional)]
    if quality is not None:
        figures = [[name, f"{m['value']:.4f}", m["better"]] for name, m in quality["metrics"].items()]
        figures += [[name, "-", f"not computed: {why}"] for name, why in quality["skipped"].items()]
        parts += ["", _table(["QUALITY", "VALUE", "BETTER"], figures)]
    images = sum(file.endswith(".png") for file in report["outputs"].values())
    written = f"{REPORT_NAME} and {QUALITY_NAME}" if quality is not None else REPORT_NAME
    parts += ["", f"wrote {images} images, {written} to {folder}"]
    parts += [f"note: {note}" for note in notes]
    return "\n".join(parts)


def _progress(quiet: bool) -> Callable[[str], None] | None:
    if quiet:
        return None
    started = time.perf_counter()

    def show(step: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {step}", file=sys.stderr, flush=True)

    return show


def _error(args: argparse.Namespace, exc: Exception) -> int:
    from .engine.errors import MissingModelsError

    if args.json:
        data: dict[str, Any] = {"error": str(exc)}
        if isinstance(exc, MissingModelsError):
            data.update(missing={role: list(entries) for role, entries in exc.missing.items()}, skipped=exc.skipped)
        print(json.dumps(data, indent=1))
    print(f"mycloset: error: {exc}", file=sys.stderr)
    return 1


def _staging_folder(folder: Path) -> Path:
    """A new, empty folder beside ``folder`` that the run writes into: made before anything runs, so an
    output folder that cannot be written fails at once, and a failed run leaves ``folder`` as it was."""
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"the output {folder} exists and is not a folder")
    if folder.is_dir() and not _previous_run(folder):
        raise FileExistsError(
            f"the output folder {folder} holds files that are not the outputs of a try-on run; "
            "give a new or empty folder (a previous run's folder is replaced as a whole)"
        )
    parent = folder.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent, prefix=f".{folder.name}.new-"))


def _previous_run(folder: Path) -> bool:
    """Whether ``folder`` is empty or holds only what a try-on run writes (its report.json among them)."""
    from .engine.outputs import QUALITY_NAME, REPORT_NAME

    entries = list(folder.iterdir())
    if not entries:
        return True
    written = all(p.is_file() and (p.suffix == ".png" or p.name in (REPORT_NAME, QUALITY_NAME)) for p in entries)
    return written and (folder / REPORT_NAME).is_file()


def _user_modes(staging: Path) -> None:
    """Give the folder and its files the modes the user's umask gives new files (temporary files and
    folders are created private)."""
    mask = os.umask(0)
    os.umask(mask)
    for path in staging.iterdir():
        path.chmod(0o666 & ~mask)
    staging.chmod(0o777 & ~mask)


def _put_in_place(staging: Path, folder: Path) -> None:
    """Replace ``folder`` by the complete ``staging`` folder: every image and report.json change together
    (a previous run's folder is moved aside first, then removed)."""
    _user_modes(staging)
    previous = None
    if folder.exists() and any(folder.iterdir()):
        previous = Path(tempfile.mkdtemp(dir=staging.parent, prefix=f".{folder.name}.old-"))
        os.replace(folder, previous / folder.name)
    if folder.exists():
        folder.rmdir()
    os.replace(staging, folder)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def _try_on(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    for what, path in (("PERSON", args.person), ("GARMENT", args.garment)):
        if not Path(path).is_file():
            parser.error(f"{what} {path} is not a file")
    if args.checkpoints is not None and not Path(args.checkpoints).is_dir():
        parser.error(f"--checkpoints {args.checkpoints} is not a folder")
    if args.pool_budget_mb is not None and args.pool_budget_mb < 0:
        parser.error(f"--pool-budget-mb must be >= 0, not {args.pool_budget_mb}")
    from .checkpoints.errors import CheckpointError
    from .checkpoints.manager import ModelManager
    from .engine.errors import EngineError
    from .engine.models import ModelPool, default_pool
    from .engine.options import TryOnOptions
    from .engine.outputs import REPORT_NAME, save_outputs, write_json
    from .engine.run import run_virtual_try_on
    from .engine_cache import ContentCache
    from .monitoring import Monitor
    from .vision.images import ImageError

    pool = default_pool() if args.pool_budget_mb is None else ModelPool(memory_budget=int(args.pool_budget_mb * MB))
    folder = Path(args.output)
    try:
        staging = _staging_folder(folder)
    except OSError as exc:
        return _error(args, exc)
    progress = _progress(args.quiet)
    monitor = Monitor()
    try:
        options = TryOnOptions(
            device=args.device,
            max_side=args.max_side,
            pose_estimator=args.pose_estimator,
            mask_refinement=not args.no_mask_refinement,
            face_restoration=not args.no_face_restoration,
            quality=not args.no_quality,
        )
        models = args.checkpoints if args.checkpoints else ModelManager(args.home, verify_files=True)
        result = run_virtual_try_on(
            args.person,
            args.garment,
            pipeline=args.pipeline,
            models=models,
            options=options,
            cache=ContentCache(directory=args.cache) if args.cache else True,
            monitor=monitor,
            progress=progress,
            pool=pool,
        )
        if progress is not None:
            progress("outputs")
        with monitor.step("outputs") as written:
            outputs = save_outputs(result, staging)
        report = result.report(outputs)
        assert written.metrics is not None
        report["steps"].append(written.metrics.to_report())
        report["pool"] = pool.figures()
        write_json(report, staging / REPORT_NAME)
        _put_in_place(staging, folder)
    except (EngineError, CheckpointError, ImageError, OSError, ValueError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        return _error(args, exc)
    print(json.dumps(report, indent=1) if args.json else summary(report, folder, result.notes, result.quality))
    return 0


def add_tryon_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``try-on PERSON GARMENT -o OUTDIR [--checkpoints DIR] [--pipeline cpvton|vitonhd] [--json]``."""
    description = (
        "Try GARMENT on PERSON. Checkpoints come from DIR (files under any names, recognised by their contents; "
        "files that cannot be used are listed with the reason) or from the model manager's active versions. "
        "Writes OUTDIR/tryon.png at the person photo's size, PNGs of the intermediates and OUTDIR/report.json; "
        "with the quality step, OUTDIR/quality.json (LPIPS, CLIP, SSIM, mask IoU, each with its meaning) and "
        "OUTDIR/quality.png. MobileSAM mask refinement and GFPGAN face restoration run when their checkpoints are "
        "present."
    )
    command = subparsers.add_parser("try-on", help="try a garment on a person photo", description=description)
    command.add_argument("person", metavar="PERSON", help="the person photo")
    command.add_argument("garment", metavar="GARMENT", help="the garment photo (an in-shop picture on white)")
    command.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="where the images and report go")
    command.add_argument("--checkpoints", metavar="DIR", help="a folder of checkpoints (default: the model manager)")
    command.add_argument("--home", metavar="DIR", help="the model store (default: $MYCLOSET_HOME or ~/.mycloset)")
    command.add_argument(
        "--pipeline", choices=PIPELINE_CHOICES, help="default: the best pipeline whose checkpoints are all present"
    )
    command.add_argument("--device", default="cpu", help="torch device of the networks (default: cpu)")
    command.add_argument(
        "--max-side",
        type=int,
        default=DEFAULT_MAX_SIDE,
        metavar="PIXELS",
        help="pose, parsing and masks run on copies at most this large (default: %(default)s)",
    )
    command.add_argument(
        "--pose-estimator",
        choices=POSE_ESTIMATOR_CHOICES,
        default="auto",
        help="which network finds the keypoints (default: auto, OpenPose when present, else BlazePose)",
    )
    command.add_argument("--no-mask-refinement", action="store_true", help="do not refine the masks with MobileSAM")
    command.add_argument("--no-face-restoration", action="store_true", help="do not restore the face with GFPGAN")
    command.add_argument(
        "--no-quality", action="store_true", help="do not measure the result (quality.json, quality.png)"
    )
    command.add_argument(
        "--pool-budget-mb",
        type=int,
        metavar="MB",
        help="keep at most MB (2**20 bytes) of loaded networks per device, releasing the least recently used "
        "(default: no limit)",
    )
    command.add_argument("--cache", metavar="DIR", help="keep results in DIR (NPZ files) and reuse them across runs")
    command.add_argument("--json", action="store_true", help="print the report as JSON instead of a summary")
    command.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    command.set_defaults(run=_try_on)
    return command
