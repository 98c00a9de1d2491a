"""``mycloset fetch mediapipe``, ``mycloset pose`` and ``mycloset person-mask``: MediaPipe's real networks.

``add_mediapipe_commands(subparsers)`` adds the three commands to the ``mycloset`` parser; handlers have the
``run(args, parser) -> exit status`` signature of ``cli.py`` and import torch and the networks only when
they run. The checkpoints folder is recognised by content (``mycloset analyze``), whatever the file names.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

POSE_ESTIMATORS = ("mediapipe_pose_landmark_full", "openpose_body_coco18")
MASK_MODELS = ("mediapipe_selfie_segmentation", "mediapipe_pose_landmark_full")


class CheckpointsMissingError(Exception):
    """The checkpoints folder lacks the files a command needs."""


def _fetch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .checkpoints.fetch import fetch_mediapipe

    for path in fetch_mediapipe(args.directory, args.wheel):
        print(path)
    print(Path(args.directory) / "NOTICE")
    return 0


def find_checkpoints(folder: str | Path) -> dict[str, Path]:
    """Registry id -> file for every identified checkpoint under ``folder`` (first file per id, by path)."""
    from .checkpoints import analyze

    root = Path(folder)
    if not root.is_dir():
        raise CheckpointsMissingError(f"{root} is not a folder; run `mycloset fetch mediapipe {root}` first")
    found: dict[str, Path] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        report = analyze(path, verify=False)
        if report.verdict == "identified" and report.entry not in found:
            found[str(report.entry)] = path
    return found


def _need(found: dict[str, Path], entries: tuple[str, ...], folder: str) -> dict[str, Path]:
    missing = [e for e in entries if e not in found]
    if missing:
        raise CheckpointsMissingError(
            f"{folder} has no identified {', '.join(missing)}; `mycloset fetch mediapipe {folder}` writes the "
            "MediaPipe files, `mycloset analyze` says what the folder holds"
        )
    return {e: found[e] for e in entries}


def _people_blazepose(result: Any) -> list[dict[str, Any]]:
    order = sorted(range(len(result)), key=lambda i: -float(result.scores[i]))
    return [
        {
            "openpose18": result.openpose18[i].round(3).tolist(),
            "coco17": result.coco17[i].round(3).tolist(),
            "landmarks": result.landmarks[i][:, :3].round(3).tolist(),
            "score": round(float(result.scores[i]), 6),
        }
        for i in order
    ]


def _people_openpose(result: Any) -> list[dict[str, Any]]:
    order = sorted(range(len(result)), key=lambda i: -float(result.scores[i]))
    return [
        {
            "openpose18": result.keypoints[i].round(3).tolist(),
            "coco17": result.keypoints_coco17[i].round(3).tolist(),
            "score": round(float(result.scores[i]), 6),
        }
        for i in order
    ]


def _pose_estimator(found: dict[str, Path], entry: str | None, folder: str) -> tuple[str, Any]:
    from .checkpoints import load_model

    chosen = entry or next(
        (e for e in POSE_ESTIMATORS if e in found and (e != POSE_ESTIMATORS[0] or "mediapipe_pose_detection" in found)),
        None,
    )
    if chosen is None:
        raise CheckpointsMissingError(
            f"{folder} holds no pose estimator (BlazePose: mediapipe_pose_detection + mediapipe_pose_landmark_full; "
            "or openpose_body_coco18); `mycloset fetch mediapipe DIR` writes BlazePose"
        )
    if chosen == "mediapipe_pose_landmark_full":
        from .wrappers.mediapipe_pose import BlazePoseEstimator

        paths = _need(found, ("mediapipe_pose_detection", chosen), folder)
        estimator = BlazePoseEstimator(load_model(paths["mediapipe_pose_detection"]), load_model(paths[chosen]))
        return chosen, lambda image: _people_blazepose(estimator.estimate(image))
    from .wrappers.openpose import OpenPoseBodyWrapper

    wrapper = OpenPoseBodyWrapper(load_model(_need(found, (chosen,), folder)[chosen]))
    return chosen, lambda image: _people_openpose(wrapper(image))


def _pose(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch

    from .vision.images import ImageError, load_image

    torch.set_flush_denormal(True)
    try:
        found = find_checkpoints(args.checkpoints)
        entry, estimate = _pose_estimator(found, args.estimator, args.checkpoints)
        results = []
        for path in args.images:
            people = estimate(load_image(path).pixels)
            results.append({"path": path, "entry": entry, "people": people})
    except (CheckpointsMissingError, ImageError, OSError) as exc:
        print(f"mycloset pose: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(results))
    else:
        for item in results:
            scores = ", ".join(f"{p['score']:.3f}" for p in item["people"])
            print(f"{item['path']}: {len(item['people'])} people ({item['entry']}){': ' + scores if scores else ''}")
    return 0


def _person_mask(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch

    from .checkpoints import load_model
    from .vision.images import ImageError, load_image, save_png
    from .wrappers.mediapipe_segmentation import SelfieSegmenter, person_mask

    torch.set_flush_denormal(True)
    try:
        found = find_checkpoints(args.checkpoints)
        if "mediapipe_selfie_segmentation" in found:
            probability = SelfieSegmenter(load_model(found["mediapipe_selfie_segmentation"]))
        else:
            from .wrappers.mediapipe_pose import BlazePoseEstimator

            paths = _need(found, ("mediapipe_pose_detection", "mediapipe_pose_landmark_full"), args.checkpoints)
            estimator = BlazePoseEstimator(
                load_model(paths["mediapipe_pose_detection"]), load_model(paths["mediapipe_pose_landmark_full"])
            )
            probability = lambda image: estimator.estimate(image).segmentation  # noqa: E731
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for path in args.images:
            target = out / f"{Path(path).stem}.png"
            save_png(person_mask(probability(load_image(path).pixels)), target)
            print(target)
    except (CheckpointsMissingError, ImageError, OSError) as exc:
        print(f"mycloset person-mask: error: {exc}", file=sys.stderr)
        return 1
    return 0


def add_mediapipe_commands(subparsers: Any) -> None:
    """Add ``fetch``, ``pose`` and ``person-mask`` to the ``mycloset`` parser."""
    fetch_cmd = subparsers.add_parser("fetch", help="fetch published models that ship inside package wheels")
    fetch_cmd.add_argument("source", choices=["mediapipe"], help="mediapipe: the five legacy .tflite models")
    fetch_cmd.add_argument("directory", metavar="DIR")
    fetch_cmd.add_argument("--wheel", metavar="PATH", help="a downloaded mediapipe-0.10.21 wheel (no download)")
    fetch_cmd.set_defaults(run=_fetch)

    pose_cmd = subparsers.add_parser("pose", help="body keypoints of photos (BlazePose or OpenPose)")
    pose_cmd.add_argument("images", nargs="+", metavar="IMAGE")
    pose_cmd.add_argument("--checkpoints", required=True, metavar="DIR", help="folder of checkpoints (any names)")
    pose_cmd.add_argument("--estimator", choices=POSE_ESTIMATORS, metavar="ENTRY",
                          help=f"one of {', '.join(POSE_ESTIMATORS)} (default: the first present)")  # fmt: skip
    pose_cmd.add_argument("--json", action="store_true", help="print one JSON list, one object per image")
    pose_cmd.set_defaults(run=_pose)

    mask_cmd = subparsers.add_parser("person-mask", help="0/255 person masks of photos (MediaPipe)")
    mask_cmd.add_argument("images", nargs="+", metavar="IMAGE")
    mask_cmd.add_argument("--checkpoints", required=True, metavar="DIR", help="folder of checkpoints (any names)")
    mask_cmd.add_argument("-o", "--out", required=True, metavar="OUTDIR")
    mask_cmd.set_defaults(run=_person_mask)
