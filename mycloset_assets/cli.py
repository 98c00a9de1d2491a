"""The ``mycloset`` command: analyse, convert and synthesize checkpoints of the try-on zoo."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import save_file
from torchvision import models

from .checkpoints import CheckpointError, analyze, load_registry
from .checkpoints.analysis import Analysis
from .checkpoints.convert import convert
from .checkpoints.synth import CONTAINERS, write_checkpoint
from .demo import run_demo
from .manager_cli import add_models_commands
from .mediapipe_cli import add_mediapipe_commands
from .tryon_cli import add_tryon_command

_COLUMNS = ("path", "verdict", "entry", "family", "confidence", "container", "matched", "total")


def _table(reports: list[Analysis]) -> str:
    rows = [
        [str(getattr(r, c)) if not isinstance(getattr(r, c), float) else f"{getattr(r, c):.3f}" for c in _COLUMNS]
        for r in reports
    ]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True))]
    for report, row in zip(reports, rows, strict=True):
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
        lines.append(f"    {report.reason}")
    return "\n".join(lines)


def _analyze(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    absent = [p for p in args.paths if not Path(p).is_file()]
    if absent:
        parser.error(f"not a file: {', '.join(absent)}")
    reports = [analyze(path, verify=not args.no_verify) for path in args.paths]
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=1))
    else:
        print(_table(reports))
    return 0


def _convert(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if Path(args.destination).suffix != ".safetensors":
        parser.error("DST must end in .safetensors")
    card = convert(args.source, args.destination)
    print(f"wrote {args.destination} ({card['tensors']} tensors, {card['entry']}) and its card")
    return 0


def _synth(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    manifest = json.loads(Path(args.manifest).read_text())
    out = write_checkpoint(manifest, args.out, args.seed, container=args.container)
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(manifest['tensors'])} tensors)")
    return 0


def _synth_zoo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    folder = Path(args.manifests)
    manifests = sorted(folder.glob("*.json"))
    if not manifests:
        parser.error(f"no manifests (*.json) in {folder}")
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


def _demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    return run_demo(Path(args.home), host=args.host, port=args.port, start=not args.no_start)


def _registry(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
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
    add_models_commands(commands)
    add_tryon_command(commands)
    add_mediapipe_commands(commands)

    demo_cmd = commands.add_parser(
        "demo", help="synthesized zoo + bundled photos in the inbox + the Dagster UI (dagster dev)"
    )
    demo_cmd.add_argument("--home", default="mycloset-demo", help="folder for zoo/, inbox/, storage/, dagster_home/")
    demo_cmd.add_argument("--host", default="127.0.0.1")
    demo_cmd.add_argument("--port", type=int, default=3000)
    demo_cmd.add_argument("--no-start", action="store_true", help="lay everything out and print the command only")
    demo_cmd.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mycloset`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args, parser)
    except CheckpointError as exc:
        print(f"mycloset: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
