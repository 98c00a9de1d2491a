"""Pose post-processing benchmark: OpenPose PAF grouping and HRNet decoding vs the network forward they follow.

Run: ``python benchmarks/bench_vision.py [--people 1 4 16] [--repeat 3] [--threads N]``. CPU, float32 networks
with their own initialisation (timing does not depend on the weights' values), median of ``--repeat`` runs.

- OpenPose: ``decode_body`` (peaks, PAF line integrals, grouping) on the maps of a 368 x 368 image holding
  1, 4 or 16 rendered people (Gaussian peaks, unit-vector PAF fields), against the body network's forward at
  its published input size 1 x 3 x 368 x 368. Also shown: the forward at the reference's default scale 0.5
  (1 x 3 x 184 x 184 for that image) and resizing the maps back to the image (``maps_to_image``).
- HRNet: ``decode_heatmaps`` (argmax, quarter-pixel refinement, inverse affine) of N people's 17 x 64 x 48
  heatmaps, against HRNet-W32's forward on the N person crops (N x 3 x 256 x 192).

Target: post-processing <= 10 % of the forward. Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from timing import timed

from mycloset_assets.checkpoints import get_entry
from mycloset_assets.vision.hrnet import decode_heatmaps
from mycloset_assets.vision.openpose import LIMB_PAF_CHANNELS, LIMBS, decode_body, maps_to_image

IMAGE_SIZE = 368
# A standing person 96 pixels tall, offsets from the neck (x right, y down), OpenPose-18 order.
PERSON = (
    (0, -12), (0, 0), (-12, 0), (-16, 18), (-18, 34), (12, 0), (16, 18), (18, 34), (-8, 40), (-9, 62),
    (-10, 84), (8, 40), (9, 62), (10, 84), (-4, -16), (4, -16), (-8, -14), (8, -14),
)  # fmt: skip


def render_people(count: int, size: int = IMAGE_SIZE, sigma: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps size x size x 19 and PAFs size x size x 38 of ``count`` people on a square grid of cells."""
    per_row = math.ceil(math.sqrt(count))
    cell = size / per_row
    scale = min(1.0, 0.9 * cell / 100)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    heat = np.zeros((size, size, 19))
    paf = np.zeros((size, size, 38))
    for index in range(count):
        neck_x = (index % per_row + 0.5) * cell
        neck_y = (index // per_row) * cell + 20 * scale + 0.05 * cell
        points = [(round(neck_x + dx * scale), round(neck_y + dy * scale)) for dx, dy in PERSON]
        for part, (x, y) in enumerate(points):
            heat[:, :, part] = np.maximum(heat[:, :, part], np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)))
        for (a, b), (cx, cy) in zip(LIMBS, LIMB_PAF_CHANNELS, strict=True):
            (xa, ya), (xb, yb) = points[a], points[b]
            length = math.hypot(xb - xa, yb - ya)
            ux, uy = (xb - xa) / length, (yb - ya) / length
            t = np.clip((xs - xa) * ux + (ys - ya) * uy, 0, length)
            near = np.hypot(xs - (xa + t * ux), ys - (ya + t * uy)) <= 2.0
            paf[:, :, cx][near] = ux
            paf[:, :, cy][near] = uy
    heat[:, :, 18] = 1 - heat[:, :, :18].max(axis=2)
    return heat, paf


def forward_time(entry_id: str, shape: tuple[int, ...], repeat: int) -> float:
    """Median forward time of the entry's network on a random input of ``shape``."""
    network = get_entry(entry_id).build().eval()
    x = torch.randn(*shape)
    with torch.inference_mode():
        network(x)  # warm-up: allocator and kernel selection
        return timed(lambda: network(x), repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU, {args.threads} torch threads, median of {args.repeat} runs")

    body_forward = forward_time("openpose_body_coco18", (1, 3, IMAGE_SIZE, IMAGE_SIZE), args.repeat)
    half_forward = forward_time("openpose_body_coco18", (1, 3, IMAGE_SIZE // 2, IMAGE_SIZE // 2), args.repeat)
    stride_maps = np.random.default_rng(0).standard_normal((57, IMAGE_SIZE // 8, IMAGE_SIZE // 8)).astype(np.float32)
    restore = timed(lambda: maps_to_image(stride_maps, (0, 0, 0, 0), 8, IMAGE_SIZE, IMAGE_SIZE), args.repeat)
    print(
        f"\nOpenPose body forward 1x3x{IMAGE_SIZE}x{IMAGE_SIZE}: {body_forward * 1000:.0f} ms "
        f"(at the default scale 0.5, 1x3x{IMAGE_SIZE // 2}x{IMAGE_SIZE // 2}: {half_forward * 1000:.0f} ms); "
        f"maps back to the image (57 channels): {restore * 1000:.1f} ms = {restore / body_forward:.1%}"
    )
    print(f"{'people':>6}  {'found':>5}  {'decode_body':>11}  {'/ forward 368':>13}  {'/ forward 184':>13}")
    for count in args.people:
        heat, paf = render_people(count)
        found = len(decode_body(heat, paf))
        decode = timed(lambda h=heat, p=paf: decode_body(h, p), args.repeat)
        print(
            f"{count:>6}  {found:>5}  {decode * 1000:>8.1f} ms  {decode / body_forward:>13.1%}  "
            f"{decode / half_forward:>13.1%}"
        )

    print("\nHRNet-W32 256x192: decode_heatmaps vs the forward on the person crops")
    print(f"{'people':>6}  {'forward':>10}  {'decode':>9}  {'ratio':>6}")
    rng = np.random.default_rng(0)
    for count in args.people:
        forward = forward_time("hrnet_w32_coco_256x192", (count, 3, 256, 192), args.repeat)
        heatmaps = rng.random((count, 17, 64, 48), dtype=np.float32)
        center = rng.uniform(100, 300, (count, 2))
        scale = np.tile([1.2, 1.6], (count, 1))
        decode = timed(lambda h=heatmaps, c=center, s=scale: decode_heatmaps(h, c, s), args.repeat)
        print(f"{count:>6}  {forward * 1000:>7.0f} ms  {decode * 1000:>6.2f} ms  {decode / forward:>6.2%}")


if __name__ == "__main__":
    main()
