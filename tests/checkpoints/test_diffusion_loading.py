"""Loading an identified UNet or ControlNet into diffusers' own classes (the ``diffusion`` extra), on CPU.

Tiny configurations are registered the way the real entries are (a YAML naming diffusers' class and
config, and a signature written by ``scripts/build_diffusion_signatures.py``) in a copy of the registry;
files are written by diffusers' ``save_pretrained`` (fp32 and the fp16 variant) and, for the original
single-file names, by ``torch.save``. The loaded network must compute what the saved one computes.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from diffusers import ControlNetModel, UNet2DConditionModel

from mycloset_assets.checkpoints import analyze, load_model
from mycloset_assets.checkpoints.registry import REGISTRY_ENV
from mycloset_assets.diffusion import from_config

ROOT = Path(__file__).resolve().parents[2]
TINY_UNET = {
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "cross_attention_dim": 24,
    "attention_head_dim": 4,
    "norm_num_groups": 8,
    "sample_size": 16,
    "in_channels": 4,
    "out_channels": 4,
}
TINY_CONTROLNET = {
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "cross_attention_dim": 24,
    "attention_head_dim": 4,
    "norm_num_groups": 8,
    "in_channels": 4,
    "conditioning_embedding_out_channels": [8, 8, 8, 16],
}


def _script():
    spec = importlib.util.spec_from_file_location("build_signatures", ROOT / "scripts/build_diffusion_signatures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _register(folder: Path, entry_id: str, class_name: str, config: dict, family: str) -> None:
    entry = {
        "id": entry_id,
        "family": family,
        "task": "diffusion",
        "description": f"tiny {class_name} for tests",
        "architecture": {
            "builder": "mycloset_assets.diffusion:from_config",
            "args": {"class_name": class_name, "config": config},
            "signature": f"signatures/{entry_id}.json.gz",
        },
        "keys": {"optional": [], "extras": [r"^first_stage_model\.", r"^cond_stage_model\."]},
    }
    (folder / f"{entry_id}.yaml").write_text(yaml.safe_dump(entry))
    data = json.dumps(_script().signature(entry)).encode()
    (folder / "signatures" / f"{entry_id}.json.gz").write_bytes(gzip.compress(data))


@pytest.fixture(scope="module")
def tiny_registry(tmp_path_factory):
    folder = tmp_path_factory.mktemp("registry")
    shutil.copytree(ROOT / "mycloset_assets" / "registry", folder, dirs_exist_ok=True)
    _register(folder, "tiny_unet", "UNet2DConditionModel", TINY_UNET, "stable_diffusion_unet")
    _register(folder, "tiny_controlnet", "ControlNetModel", TINY_CONTROLNET, "controlnet")
    return folder


@pytest.fixture
def registry(tiny_registry, monkeypatch):
    monkeypatch.setenv(REGISTRY_ENV, str(tiny_registry))
    return tiny_registry


def _synthesized(class_name: str, config: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    network = from_config(class_name, config).eval()
    with torch.no_grad():
        for tensor in network.parameters():
            tensor.add_(torch.randn_like(tensor) * 0.05)  # zero-initialised layers must not hide mistakes
    return network


def _inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {
        "sample": torch.randn(1, 4, 16, 16, generator=generator),
        "timestep": torch.tensor([10]),
        "encoder_hidden_states": torch.randn(1, 7, 24, generator=generator),
    }


def _unet_output(network: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return network(**_inputs()).sample


@pytest.mark.parametrize("variant", [None, "fp16"])
def test_a_save_pretrained_unet_loads_into_diffusers_class(registry, tmp_path, variant):
    saved = _synthesized("UNet2DConditionModel", TINY_UNET)
    if variant:
        saved.half()  # what publishers do before save_pretrained(variant="fp16")
    saved.save_pretrained(tmp_path / "unet", variant=variant)
    name = "diffusion_pytorch_model" + (".fp16" if variant else "") + ".safetensors"
    report = analyze(tmp_path / "unet" / name)
    assert report.reason.endswith(f"config.json beside it (UNet2DConditionModel), {variant or 'fp32'}")
    assert (report.verdict, report.entry, report.match_rate) == ("identified", "tiny_unet", 1.0), report.reason
    loaded = load_model(tmp_path / "unet" / name)
    assert type(loaded.module) is UNet2DConditionModel and loaded.dtype == torch.float32
    want = _unet_output(saved.float())
    got = _unet_output(loaded.module)
    assert torch.allclose(got, want, atol=1e-5, rtol=0), (got - want).abs().max()


def test_a_single_file_unet_loads_into_diffusers_class(registry, tmp_path):
    saved = _synthesized("UNet2DConditionModel", TINY_UNET)
    names = json.loads(gzip.decompress((registry / "signatures/tiny_unet.json.gz").read_bytes()))["layouts"]
    state = {names["single_file"][key]: tensor.clone() for key, tensor in saved.state_dict().items()}
    state["first_stage_model.encoder.conv_in.weight"] = torch.zeros(8, 3, 3, 3)
    path = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": state}, path)
    loaded = load_model(path)
    assert loaded.analysis.reason.endswith("holding UNet, VAE; missing: text encoder, fp32")
    assert torch.equal(_unet_output(loaded.module), _unet_output(saved))


@pytest.mark.parametrize("layout", ["save_pretrained", "control_model.", "no prefix"])
def test_a_controlnet_loads_into_diffusers_class(registry, tmp_path, layout):
    saved = _synthesized("ControlNetModel", TINY_CONTROLNET)
    if layout == "save_pretrained":
        saved.save_pretrained(tmp_path)
        path = tmp_path / "diffusion_pytorch_model.safetensors"
    else:
        names = json.loads(gzip.decompress((registry / "signatures/tiny_controlnet.json.gz").read_bytes()))
        table = names["layouts"]["single_file" if layout == "control_model." else "release_without_prefix"]
        path = tmp_path / "control_tiny.pth"
        torch.save({table[key]: tensor.clone() for key, tensor in saved.state_dict().items()}, path)
    loaded = load_model(path)
    assert (loaded.entry.id, type(loaded.module)) == ("tiny_controlnet", ControlNetModel)
    hint = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = saved(**_inputs(), controlnet_cond=hint, return_dict=False)
        got = loaded.module(**_inputs(), controlnet_cond=hint, return_dict=False)
    for a, b in zip([*want[0], want[1]], [*got[0], got[1]], strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)


def test_from_config_refuses_other_classes():
    with pytest.raises(ValueError, match="class_name must be one of UNet2DConditionModel, ControlNetModel"):
        from_config("AutoencoderKL", {})
