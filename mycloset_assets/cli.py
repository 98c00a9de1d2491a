"""The ``mycloset`` command: analyse, convert and synthesize checkpoints of the try-on zoo.

A command module is registered with one line in ``COMMAND_MODULES``: its ``add_*(subparsers)`` builds parsers
with the standard library only and every handler imports torch, Dagster and the project's heavy modules inside
its body, so that ``mycloset --help`` and ``mycloset CMD --help`` import neither (``tests/test_cli_imports.py``
checks every command).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .demo_cli import add_demo_command
from .deploy_cli import add_deploy_commands
from .manager_cli import add_models_commands
from .mediapipe_cli import add_mediapipe_commands
from .tryon_cli import add_tryon_command

if TYPE_CHECKING:
    from .checkpoints.analysis import Analysis

CONTAINERS = ("torch_zip", "torch_legacy", "safetensors", "torchscript")
"""The containers ``synth --container`` offers (``checkpoints.synth.CONTAINERS``, named here so that building
the parser imports no torch)."""

COMMAND_MODULES: tuple[Callable[[argparse._SubParsersAction], object], ...] = (
    add_models_commands,
    add_tryon_command,
    add_demo_command,
    add_mediapipe_commands,
    add_deploy_commands,
)
"""Every module that adds sub-commands: ``add_*(subparsers)`` builds parsers only, and its handlers import what they
need (torch, Dagster) when they run, so that ``mycloset --help`` and ``mycloset CMD --help`` stay fast."""

_COLUMNS = ("path", "verdict", "entry", "family", "confidence", "container", "matched", "total")


def _table(reports: list[Analysis], weights: dict[str, str]) -> str:
    rows = [
        [str(getattr(r, c)) if not isinstance(getattr(r, c), float) else f"{getattr(r, c):.3f}" for c in _COLUMNS]
        for r in reports
    ]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True))]
    for report, row in zip(reports, rows, strict=True):
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
        lines.append(f"    {report.reason}")
        if report.path in weights:
            lines.append(f"    weights: {weights[report.path]}")
    return "\n".join(lines)


def _analyze(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .checkpoints import analyze

    absent = [p for p in args.paths if not Path(p).is_file()]
    if absent:
        parser.error(f"not a file: {', '.join(absent)}")
    reports = [analyze(path, verify=not args.no_verify) for path in args.paths]
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=1))
    else:
        from .checkpoints.provenance import weights_provenance

        weights = {r.path: weights_provenance(r.path, r.entry).words for r in reports if r.verdict == "identified"}
        print(_table(reports, weights))
    return 0


def _convert(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if Path(args.destination).suffix != ".safetensors":
        parser.error("DST must end in .safetensors")
    from .checkpoints.convert import convert

    card = convert(args.source, args.destination)
    print(f"wrote {args.destination} ({card['tensors']} tensors, {card['entry']}) and its card")
    return 0


def _synth(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .checkpoints.synth import write_checkpoint

    manifest = json.loads(Path(args.manifest).read_text())
    out = write_checkpoint(manifest, args.out, args.seed, container=args.container)
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(manifest['tensors'])} tensors)")
    return 0


def _synth_zoo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    folder = Path(args.manifests)
    manifests = sorted(folder.glob("*.json"))
    if not manifests:
        parser.error(f"no manifests (*.json) in {folder}")
    from .checkpoints.synth import write_checkpoint

    skip = set(args.skip or ())
    for path in manifests:
        if path.stem in skip:
            continue
        manifest = json.loads(path.read_text())
        out = Path(args.out) / manifest["name"] / manifest["published_as"]["file"]
        write_checkpoint(manifest, out, args.seed)
        print(out)
    if args.with_impostors:
        for out in write_impostors(Path(args.out) / "impostors"):
            print(out)
    return 0


def write_impostors(folder: Path) -> list[Path]:
    """Files the zoo's users really hold: an ImageNet ResNet-50 named like OpenPose, an HTML error page
    saved as a TOM checkpoint, a safetensors file renamed .pth and a truncated download."""
    import torch
    from safetensors.torch import save_file
    from torchvision import models

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    resnet = folder / "openpose.pth"
    torch.save(models.resnet50(weights=None).state_dict(), resnet)
    html = folder / "tom_final.pth"
    html.write_text("<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head></html>\n")
    renamed = folder / "u2netp.pth"
    save_file({k: v.contiguous() for k, v in models.alexnet(weights=None).state_dict().items()}, str(renamed))
    truncated = folder / "body_pose_model.pth"
    data = resnet.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    return [resnet, html, renamed, truncated]


def _registry(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .checkpoints import load_registry

    for entry in load_registry().values():
        print(f"{entry.id:36s} {entry.family:20s} {entry.task:20s} {entry.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mycloset``."""
    parser = argparse.ArgumentParser(prog="mycloset", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    analyze_cmd = commands.add_parser("analyze", help="say what checkpoint files are, from their contents")
    analyze_cmd.add_argument("paths", nargs="+", metavar="PATH")
    analyze_cmd.add_argument("--json", action="store_true", help="print one JSON list, one object per PATH")
    analyze_cmd.add_argument(
        "--no-verify", action="store_true", help="header only: skip the CRC check of zip archives' data"
    )
    analyze_cmd.set_defaults(run=_analyze)

    convert_cmd = commands.add_parser("convert", help="write a canonical safetensors copy and its JSON card")
    convert_cmd.add_argument("source", metavar="SRC")
    convert_cmd.add_argument("destination", metavar="DST.safetensors")
    convert_cmd.set_defaults(run=_convert)

    synth_cmd = commands.add_parser("synth", help="write a checkpoint in a manifest's published layout")
    synth_cmd.add_argument("manifest", metavar="MANIFEST.json")
    synth_cmd.add_argument("out", metavar="OUT")
    synth_cmd.add_argument("--seed", type=int, default=0)
    synth_cmd.add_argument("--container", choices=CONTAINERS)
    synth_cmd.set_defaults(run=_synth)

    zoo_cmd = commands.add_parser("synth-zoo", help="write every manifest's checkpoint under OUT/<name>/")
    zoo_cmd.add_argument("manifests", metavar="MANIFEST_DIR")
    zoo_cmd.add_argument("out", metavar="OUT")
    zoo_cmd.add_argument("--seed", type=int, default=0)
    zoo_cmd.add_argument("--skip", nargs="*", metavar="NAME", help="manifest names to leave out")
    zoo_cmd.add_argument(
        "--with-impostors", action="store_true", help="also write impostor and broken files under OUT/impostors/"
    )
    zoo_cmd.set_defaults(run=_synth_zoo)

    registry_cmd = commands.add_parser("registry", help="list the registry's entries")
    registry_cmd.set_defaults(run=_registry)
    for add_commands in COMMAND_MODULES:
        add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mycloset`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from .checkpoints.errors import CheckpointError

    try:
        return args.run(args, parser)
    except CheckpointError as exc:
        print(f"mycloset: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
