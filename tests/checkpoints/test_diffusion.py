"""Stable Diffusion UNets and ControlNet: identified from their headers, layouts and variants told apart.

Files are written the way the publishers' tools lay them out, with the real key sets and shapes: diffusers'
``save_pretrained`` folders (``diffusion_pytorch_model[.fp16].safetensors`` + ``config.json``) as
safetensors headers over a sparse data section; CompVis/Stability single files and ControlNet ``.pth`` files
as ``torch.save`` archives of zero-stride tensors. Only headers are read, so a 10 GB SDXL UNet costs its
header. The expected key sets come from diffusers 0.42.1 itself (the ``diffusion`` extra), built on meta.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from mycloset_assets.checkpoints import analyze, get_entry, load_registry
from mycloset_assets.checkpoints.keymap import build_on_meta, entry_tables, match_tensors
from mycloset_assets.checkpoints.reader import read_header
from mycloset_assets.checkpoints.synth import write_header_only_safetensors

ROOT = Path(__file__).resolve().parents[2]
TENSORS = {
    "sd15_unet_diffusers": 686,
    "sd15_inpainting_unet_diffusers": 686,
    "sd21_unet_diffusers": 686,
    "sdxl_unet_diffusers": 1680,
    "controlnet_sd15_diffusers": 340,
}
UNETS = [name for name in TENSORS if "unet" in name]


def diffusers_state(entry_id: str) -> dict[str, torch.Tensor]:
    """diffusers' own state dict of the entry's published config, on the meta device."""
    return build_on_meta(get_entry(entry_id)).state_dict()


def single_file_names(entry_id: str) -> dict[str, str]:
    """diffusers key -> original single-file name (the signature's layout, checked against diffusers'
    converters by ``test_stored_signatures_are_what_diffusers_builds``)."""
    data = json.loads(gzip.decompress(get_entry(entry_id).signature.read_bytes()))
    return data["layouts"]["single_file"]


def write_diffusers_folder(root: Path, entry_id: str, dtype: str = "float32", **overrides) -> Path:
    """``save_pretrained``'s layout: ``unet/`` (or the ControlNet repo root) with config.json and weights."""
    entry = get_entry(entry_id)
    folder = root / ("unet" if entry.args["class_name"] == "UNet2DConditionModel" else "")
    name = "diffusion_pytorch_model" + (".fp16" if dtype == "float16" else "") + ".safetensors"
    shapes = {k: overrides.get(k, tuple(v.shape)) for k, v in diffusers_state(entry_id).items()}
    path = write_header_only_safetensors(folder / name, {k: (s, dtype) for k, s in shapes.items()}, {"format": "pt"})
    config = {"_class_name": entry.args["class_name"], "_diffusers_version": "0.42.1", **entry.args["config"]}
    (folder / "config.json").write_text(json.dumps(config))
    return path


def zero_stride(shape: tuple[int, ...], dtype: torch.dtype = torch.float16) -> torch.Tensor:
    return torch.zeros((), dtype=dtype).expand(shape)


def single_file_state(entry_id: str, parts: tuple[str, ...] = ("unet",)) -> dict[str, torch.Tensor]:
    """An original single file's tensors: the UNet under its LDM names, plus representative VAE, text
    encoder and noise-schedule tensors when asked (those parts are reported, not matched tensor by tensor)."""
    state = diffusers_state(entry_id)
    tensors = {
        published: zero_stride(tuple(state[key].shape)) for key, published in single_file_names(entry_id).items()
    }
    if "vae" in parts:
        tensors["first_stage_model.encoder.conv_in.weight"] = zero_stride((128, 3, 3, 3))
        tensors["first_stage_model.quant_conv.weight"] = zero_stride((8, 8, 1, 1))
    if "text" in parts:
        width = {"sd21_unet_diffusers": 1024}.get(entry_id, 768)
        if entry_id == "sdxl_unet_diffusers":
            tensors["conditioner.embedders.0.transformer.text_model.final_layer_norm.weight"] = zero_stride((768,))
            tensors["conditioner.embedders.1.model.text_projection"] = zero_stride((1280, 1280))
        elif entry_id == "sd21_unet_diffusers":
            tensors["cond_stage_model.model.token_embedding.weight"] = zero_stride((49408, width))
        else:
            tensors["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"] = zero_stride(
                (49408, width)
            )
    if "schedule" in parts:
        names = ("denoiser.sigmas",) if entry_id == "sdxl_unet_diffusers" else ("betas", "alphas_cumprod", "logvar")
        for name in names:
            tensors[name] = zero_stride((1000,), torch.float32)
    return tensors


def others_that_claim(path: Path) -> list[str]:
    """Every registry entry (any table) under which the file matches in full with nothing unexpected."""
    tensors = read_header(path).tensors
    claims = []
    for entry_id, entry in load_registry().items():
        for table in entry_tables(entry_id):
            match = match_tensors(tensors, table, entry.keys)
            if match.match_rate == 1.0 and not match.unexpected:
                claims.append(entry_id)
                break
    return claims


def test_stored_signatures_are_what_diffusers_builds():
    spec = importlib.util.spec_from_file_location("build_signatures", ROOT / "scripts/build_diffusion_signatures.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    import yaml

    for entry_id, count in TENSORS.items():
        entry = get_entry(entry_id)
        fresh = script.signature(yaml.safe_load(entry.source.read_text()))  # re-checks the round trip too
        stored = json.loads(gzip.decompress(entry.signature.read_bytes()))
        assert fresh["tensors"] == stored["tensors"] and fresh["layouts"] == stored["layouts"], entry_id
        assert len(stored["tensors"]) == count
        assert {k: tuple(v) for k, (v, _) in stored["tensors"].items()} == {
            k: tuple(t.shape) for k, t in diffusers_state(entry_id).items()
        }


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("entry_id", list(TENSORS))
def test_diffusers_folder_files_are_identified_as_their_variant_only(tmp_path, entry_id, dtype):
    path = write_diffusers_folder(tmp_path, entry_id, dtype)
    report = analyze(path)
    assert (report.verdict, report.entry) == ("identified", entry_id), report.reason
    assert (report.match_rate, report.confidence, report.container, report.prefix) == (1.0, 1.0, "safetensors", None)
    assert (report.tensors, report.matched, report.total) == (TENSORS[entry_id],) * 3
    assert "equal on contents" not in report.reason
    precision = "fp16" if dtype == "float16" else "fp32"
    class_name = get_entry(entry_id).args["class_name"]
    assert report.reason.endswith(f"; a diffusers folder file with config.json beside it ({class_name}), {precision}")
    assert others_that_claim(path) == [entry_id]


def test_a_lone_diffusers_file_says_its_config_is_missing(tmp_path):
    path = write_diffusers_folder(tmp_path, "sd15_unet_diffusers")
    (path.parent / "config.json").unlink()
    report = analyze(path)
    assert (report.verdict, report.entry) == ("identified", "sd15_unet_diffusers")
    assert report.reason.endswith("; diffusers layout, fp32, no config.json beside it")


@pytest.mark.parametrize("entry_id", UNETS)
def test_single_file_checkpoints_are_identified_with_their_parts(tmp_path, entry_id):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": single_file_state(entry_id, ("unet", "vae", "text", "schedule"))}, path)
    report = analyze(path)
    assert (report.verdict, report.entry, report.match_rate) == ("identified", entry_id, 1.0), report.reason
    assert (report.container, report.wrapper, report.matched) == ("torch_zip", "state_dict", TENSORS[entry_id])
    assert report.unexpected == []
    assert report.reason.endswith(
        "; an original single-file checkpoint holding UNet, VAE, text encoder; complete, fp16"
    ), report.reason
    assert others_that_claim(path) == [entry_id]


def test_a_single_file_without_vae_and_text_encoder_says_so(tmp_path):
    path = tmp_path / "unet_only.safetensors"
    state = single_file_state("sd15_unet_diffusers")
    write_header_only_safetensors(path, {k: (tuple(v.shape), "float32") for k, v in state.items()})
    report = analyze(path)
    assert (report.verdict, report.entry, report.match_rate) == ("identified", "sd15_unet_diffusers", 1.0)
    assert report.reason.endswith("holding UNet; missing: VAE, text encoder, fp32")


@pytest.mark.parametrize("prefixed", [True, False])
def test_controlnet_release_files_are_identified(tmp_path, prefixed):
    prefix = "" if prefixed else "control_model."
    state = {k.removeprefix(prefix): v for k, v in single_file_state("controlnet_sd15_diffusers").items()}
    path = tmp_path / "control_v11p_sd15_openpose.pth"
    torch.save(state, path)
    report = analyze(path)
    assert (report.verdict, report.entry, report.match_rate) == ("identified", "controlnet_sd15_diffusers", 1.0)
    assert report.tensors == 340 and "equal on contents" not in report.reason
    layout = "(control_model.*)" if prefixed else "without the control_model. prefix"
    assert report.reason.endswith(f"an original ControlNet single file {layout}, fp16")
    assert others_that_claim(path) == ["controlnet_sd15_diffusers"]


def test_controlnet_beside_a_whole_stable_diffusion_is_the_controlnet(tmp_path):
    state = {
        **single_file_state("controlnet_sd15_diffusers"),
        **single_file_state("sd15_unet_diffusers", ("unet", "vae")),
    }
    path = tmp_path / "control_sd15_openpose.pth"
    torch.save(state, path)
    report = analyze(path)
    assert (report.verdict, report.entry, report.match_rate) == ("identified", "controlnet_sd15_diffusers", 1.0)
    assert report.reason.endswith(
        "an original ControlNet single file (control_model.* and a Stable Diffusion UNet), fp16"
    )


@pytest.mark.parametrize(
    ("entry_id", "channels"), [("sd15_inpainting_unet_diffusers", 13), ("sdxl_unet_diffusers", 13)]
)
def test_a_try_on_unet_with_a_widened_conv_in_is_partial_and_says_why(tmp_path, entry_id, channels):
    path = write_diffusers_folder(tmp_path, entry_id, "float16", **{"conv_in.weight": (320, channels, 3, 3)})
    report = analyze(path)
    family = get_entry(entry_id).family
    assert (report.verdict, report.family) == ("partial", family), report.reason
    assert report.entry in (entry_id, "sd15_unet_diffusers" if "sd15" in entry_id else entry_id)
    assert (report.matched, report.total) == (TENSORS[entry_id] - 1, TENSORS[entry_id])
    assert report.mismatched == [
        {
            "key": "conv_in.weight",
            "file_shape": [320, channels, 3, 3],
            "model_shape": [320, get_entry(report.entry).args["config"]["in_channels"], 3, 3],
            "file_dtype": "float16",
            "model_dtype": "float32",
        }
    ]
    assert f"conv_in.weight takes {channels} input channels instead of" in report.reason
    assert "a fine-tuned network with extra inputs, e.g. a try-on UNet" in report.reason


def test_analysis_never_imports_diffusers(tmp_path):
    """Analysis needs neither diffusers nor segment-anything (the diffusion entries read stored signatures);
    building a diffusion network without diffusers says which extra to install."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['diffusers'] = None\n"
        "sys.modules['segment_anything'] = None\n"
        "from mycloset_assets.checkpoints import analyze\n"
        f"print(analyze({str(write_diffusers_folder(tmp_path, 'sd21_unet_diffusers'))!r}).entry)\n"
        "from mycloset_assets.diffusion import DiffusersMissingError, from_config\n"
        "try:\n"
        "    from_config('UNet2DConditionModel', {})\n"
        "except DiffusersMissingError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.splitlines() == [
        "sd21_unet_diffusers",
        "building a Stable Diffusion UNet or ControlNet needs diffusers (pip install -e '.[diffusion]'); "
        "analysing the file does not",
    ]
