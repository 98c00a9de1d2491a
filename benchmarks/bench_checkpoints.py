"""Checkpoint benchmark: header-only analysis vs torch.load, and three ways to load a network.

Run: ``python benchmarks/bench_checkpoints.py [--entry schp_lip20] [--repeat 5]``. It synthesizes a
checkpoint of ``--entry`` (>= 250 MB: schp_lip20 has 603 tensors, torchvision_vgg16 has 32) in zip and
legacy containers plus its canonical safetensors copy, then times, side by side in one process (warm
page cache, median of ``--repeat`` runs):

- header-only analysis (``analyze(verify=False)``, registry tables built once beforehand) vs ``torch.load``
- classic: ``Module()`` + ``torch.load`` + ``load_state_dict``; meta + mmap (zip); meta + safetensors.

Targets: analysis <= 2 % of ``torch.load``; the safetensors path <= 25 % of the classic path.

Then an SDXL UNet (diffusers fp16 layout, 1,680 tensors, 5.1 GB; written as its header over a sparse data
section) is read and analysed header-only: target <= 50 ms for the header read. ``--sdxl-only`` runs just that.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from timing import timed

from mycloset_assets.checkpoints import analyze, get_entry, load_model
from mycloset_assets.checkpoints.convert import convert
from mycloset_assets.checkpoints.keymap import entry_tables
from mycloset_assets.checkpoints.reader import read_header
from mycloset_assets.checkpoints.synth import write_checkpoint, write_header_only_safetensors
from mycloset_assets.package_data import manifests_folder

MANIFESTS = manifests_folder()


def classic_load(entry_id: str, path: Path) -> torch.nn.Module:
    """What most tools do: construct (random init), torch.load everything, strip wrapper/prefix, load."""
    entry = get_entry(entry_id)
    network = entry.build()
    state = torch.load(path, map_location="cpu", weights_only=True)
    if entry.keys.wrapper:
        state = state[entry.keys.wrapper]
    prefix = entry.keys.prefix or ""
    network.load_state_dict({k.removeprefix(prefix): v for k, v in state.items()})
    return network.eval()


def bench_sdxl_header(repeat: int) -> None:
    """Header read and full analysis of a 1,680-tensor SDXL UNet file (diffusers fp16 layout)."""
    table = entry_tables("sdxl_unet_diffusers")[0]
    specs = {name: (spec.shape, "float16") for name, spec in table.tensors.items()}
    with tempfile.TemporaryDirectory() as folder:
        path = write_header_only_safetensors(
            Path(folder) / "unet" / "diffusion_pytorch_model.fp16.safetensors", specs, {"format": "pt"}
        )
        analyze(path, verify=False)
        header = timed(lambda: read_header(path), repeat)
        header_cpu = timed(lambda: read_header(path), repeat, time.process_time)
        analysis = timed(lambda: analyze(path, verify=False), repeat)
        size_gb = path.stat().st_size / 1e9
    print(
        f"SDXL UNet {len(specs)} tensors, {size_gb:.2f} GB (median of {repeat}, registry tables built beforehand): "
        f"header read {header * 1000:.1f} ms wall, {header_cpu * 1000:.1f} ms CPU "
        f"(target <= 50 ms: {'met' if header <= 0.05 else 'NOT met'} on wall time); "
        f"full analysis {analysis * 1000:.1f} ms wall"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entry", default="schp_lip20")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sdxl-only", action="store_true", help="only the SDXL header-read figure")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    bench_sdxl_header(max(args.repeat, 5))
    if args.sdxl_only:
        return
    manifest = json.loads((MANIFESTS / f"{args.entry}.json").read_text())
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        zip_file = write_checkpoint(manifest, root / "model_zip.pth", container="torch_zip")
        legacy_file = write_checkpoint(manifest, root / "model_legacy.pth", container="torch_legacy")
        cold_start = time.perf_counter()
        analyze(zip_file, verify=False)
        cold = time.perf_counter() - cold_start
        canonical = root / "model.safetensors"
        convert(zip_file, canonical)
        size_mb = zip_file.stat().st_size / 2**20
        print(
            f"entry {args.entry}: {len(manifest['tensors'])} tensors, zip {size_mb:.1f} MiB, "
            f"legacy {legacy_file.stat().st_size / 2**20:.1f} MiB; median of {args.repeat} runs, warm cache"
        )
        print(f"first analysis in this process (builds every registry network on meta): {cold * 1000:.0f} ms")
        rows = []
        for label, path in (("zip", zip_file), ("legacy", legacy_file)):
            header_only = timed(lambda p=path: analyze(p, verify=False), args.repeat)
            verified = timed(lambda p=path: analyze(p, verify=True), args.repeat)
            full = timed(lambda p=path: torch.load(p, map_location="cpu", weights_only=True), args.repeat)
            rows.append((label, header_only, verified, full))
        print(
            f"\n{'container':10s} {'analysis (header)':>18s} {'analysis (+CRC)':>16s} {'torch.load':>11s} "
            f"{'ratio':>7s}  target <= 2 %"
        )
        for label, header_only, verified, full in rows:
            print(
                f"{label:10s} {header_only * 1000:15.1f} ms {verified * 1000:13.1f} ms {full * 1000:8.1f} ms "
                f"{header_only / full:7.2%}  {'met' if header_only / full <= 0.02 else 'NOT met'}"
            )
        classic = timed(lambda: classic_load(args.entry, zip_file), args.repeat)
        classic_legacy = timed(lambda: classic_load(args.entry, legacy_file), args.repeat)
        meta_mmap = timed(lambda: load_model(zip_file, verify=False), args.repeat)
        meta_mmap_crc = timed(lambda: load_model(zip_file, verify=True), args.repeat)
        meta_legacy = timed(lambda: load_model(legacy_file), args.repeat)
        meta_safetensors = timed(lambda: load_model(canonical), args.repeat)
        print(f"\n{'loading path':44s} {'time':>9s} {'vs classic':>11s}")
        for label, value in (
            ("classic: Module() + torch.load + load_state_dict", classic),
            ("classic, legacy file", classic_legacy),
            ("meta + mmap (zip, header-only analysis)", meta_mmap),
            ("meta + mmap (zip, CRC verified)", meta_mmap_crc),
            ("meta + legacy (read once)", meta_legacy),
            ("meta + safetensors (canonical copy)", meta_safetensors),
        ):
            print(f"{label:44s} {value * 1000:6.0f} ms {value / classic:10.1%}")
        ratio = meta_safetensors / classic
        print(
            f"\nsafetensors path / classic path = {ratio:.1%} (target <= 25 %: {'met' if ratio <= 0.25 else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
