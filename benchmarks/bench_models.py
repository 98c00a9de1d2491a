"""Forward-pass benchmark of every network in the registry: CPU, float32, batch 1 and 4.

Run: ``python benchmarks/bench_models.py [--entries ID ...] [--repeat 3]``. Each network is built with
its own initialisation (timing does not depend on the weights' values), run at its published input
size, and reported with its GFLOPs per image (``torch.utils.flop_counter``, 2 FLOPs per multiply-add),
images/s at batch 1 and batch 4, and the batch-4 / batch-1 throughput ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from mycloset_assets.checkpoints import get_entry, load_registry

Inputs = Callable[[int], tuple[object, ...]]


def _images(channels: int, height: int, width: int) -> Inputs:
    return lambda n: (torch.randn(n, channels, height, width),)


def _pair(a: tuple[int, int, int], b: tuple[int, int, int]) -> Inputs:
    return lambda n: (torch.randn(n, *a), torch.randn(n, *b))


def _alias(n: int) -> tuple[object, ...]:
    size = (1024, 768)
    return (torch.randn(n, 9, *size), torch.rand(n, 7, *size), torch.rand(n, 8, *size), torch.rand(n, 1, *size))


def _clip(n: int) -> tuple[object, ...]:
    return (torch.randn(n, 3, 224, 224), torch.randint(1, 49407, (n, 77)))


INPUTS: dict[str, Inputs] = {
    "openpose_body_coco18": _images(3, 368, 368),
    "openpose_hand": _images(3, 368, 368),
    "u2net": _images(3, 320, 320),
    "u2netp": _images(3, 320, 320),
    "u2net_cloth_seg4": _images(3, 768, 768),
    "hrnet_w32_coco_256x192": _images(3, 256, 192),
    "hrnet_w32_coco_256x192_mmpose": _images(3, 256, 192),
    "hrnet_w48_coco_384x288": _images(3, 384, 288),
    "hrnet_w48_coco_384x288_mmpose": _images(3, 384, 288),
    "graphonomy_cihp20": _images(3, 512, 512),
    "schp_lip20": _images(3, 473, 473),
    "schp_atr18": _images(3, 512, 512),
    "deeplabv3plus_mobilenet_voc": _images(3, 513, 513),
    "deeplabv3plus_resnet101_voc": _images(3, 513, 513),
    "torchvision_deeplabv3_resnet101": _images(3, 520, 520),
    "torchvision_alexnet_features": _images(3, 224, 224),
    "torchvision_vgg16": _images(3, 224, 224),
    "cpvton_gmm": _pair((22, 256, 192), (3, 256, 192)),
    "cpvton_tom": _images(25, 256, 192),
    "vitonhd_seg": _images(21, 256, 192),
    "vitonhd_gmm": _pair((7, 256, 192), (3, 256, 192)),
    "vitonhd_alias": _alias,
    "lpips_alex_lin": _pair((3, 256, 256), (3, 256, 256)),
    "lpips_vgg_lin": _pair((3, 256, 256), (3, 256, 256)),
    "clip_vit_b32": _clip,
    "gfpgan_v1_4": _images(3, 512, 512),
    "mobile_sam": _images(3, 1024, 1024),
}


def _forward(entry_id: str, network: torch.nn.Module) -> Callable[[tuple[object, ...]], object]:
    if entry_id == "mobile_sam":
        return lambda inputs: network.image_encoder(*inputs)
    if entry_id == "gfpgan_v1_4":
        return lambda inputs: network(*inputs, return_rgb=False, randomize_noise=False)
    return lambda inputs: network(*inputs)


def measure(entry_id: str, repeat: int) -> tuple[float, float, float]:
    """(GFLOPs per image, images/s at batch 1, images/s at batch 4)."""
    network = get_entry(entry_id).build().eval()
    make = INPUTS[entry_id]
    run = _forward(entry_id, network)
    throughput = []
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            run(make(1))
        gflops = counter.get_total_flops() / 1e9
        for batch in (1, 4):
            inputs = make(batch)
            run(inputs)
            samples = []
            for _ in range(repeat):
                start = time.perf_counter()
                run(inputs)
                samples.append(time.perf_counter() - start)
            throughput.append(batch / statistics.median(samples))
    return gflops, throughput[0], throughput[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", nargs="*", help="registry ids (default: every entry)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    entries = args.entries or sorted(load_registry())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU; median of {args.repeat}")
    print(f"{'entry':34s} {'GFLOPs/img':>10s} {'img/s b1':>9s} {'img/s b4':>9s} {'b4/b1':>6s}")
    for entry_id in entries:
        gflops, single, batched = measure(entry_id, args.repeat)
        print(f"{entry_id:34s} {gflops:10.2f} {single:9.2f} {batched:9.2f} {batched / single:6.2f}")


if __name__ == "__main__":
    main()
