"""Building and loading: strict by default, dtype and policy explicit, canonical copies as the fast path."""

from __future__ import annotations

import json

import pytest
import torch

from mycloset_assets.checkpoints import LoadRefusedError, analyze, load_model
from mycloset_assets.checkpoints.convert import card_path, convert, file_sha256
from mycloset_assets.models.u2net import U2NET, U2NETP


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_loaded_tensors_are_the_file_values_under_module_keys(synth_file):
    path = synth_file("openpose_hand")
    module = load_model(path).module
    published = torch.load(path, weights_only=True)
    assert torch.equal(module.state_dict()["model1_0.conv1_1.weight"], published["conv1_1.weight"])
    assert torch.equal(module.state_dict()["model6.Mconv7_stage6.bias"], published["Mconv7_stage6.bias"])
    assert all(not t.is_meta for t in module.state_dict().values())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, "float64"])
def test_dtype_is_an_argument(synth_file, dtype):
    loaded = load_model(synth_file("u2netp"), dtype=dtype)
    expected = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    assert loaded.dtype == expected
    assert {p.dtype for p in loaded.module.parameters()} == {expected}
    counters = [t for k, t in loaded.module.state_dict().items() if k.endswith("num_batches_tracked")]
    assert counters and all(t.dtype == torch.int64 and int(t) == 0 for t in counters)


def test_integer_dtype_is_refused(synth_file):
    with pytest.raises(ValueError, match="floating-point"):
        load_model(synth_file("u2netp"), dtype=torch.int32)


def _other_head(tmp_path):
    torch.manual_seed(0)
    network = U2NET(3, 2, sigmoid=False)
    path = tmp_path / "cloth_2class.pth"
    torch.save({"state_dict": network.state_dict()}, path)
    return network, path


def test_other_class_count_is_partial_and_refused_by_default(tmp_path):
    _, path = _other_head(tmp_path)
    report = analyze(path)
    assert (report.verdict, report.family) == ("partial", "u2net")
    heads = {f"side{i}.{p}" for i in range(1, 7) for p in ("weight", "bias")} | {"outconv.weight", "outconv.bias"}
    assert {m["key"] for m in report.mismatched} == heads
    assert report.missing == [] and report.unexpected == []
    assert report.matched == report.total - len(heads)
    with pytest.raises(LoadRefusedError, match="reinit_head"):
        load_model(path)


def test_reinit_head_policy_lists_what_it_reinitialised(tmp_path):
    source, path = _other_head(tmp_path)
    loaded = load_model(path, policy="reinit_head")
    assert sorted(loaded.reinitialised) == sorted([f"side{i}" for i in range(1, 7)] + ["outconv"])
    state = loaded.module.state_dict()
    assert torch.equal(
        state["stage1.rebnconvin.conv_s1.weight"], source.state_dict()["stage1.rebnconvin.conv_s1.weight"]
    )
    out_ch = loaded.entry.args["out_ch"]
    assert state["outconv.weight"].shape[0] == out_ch


def test_unknown_policy_is_refused(synth_file):
    with pytest.raises(ValueError, match="policy"):
        load_model(synth_file("u2netp"), policy="fill_random")


def test_convert_writes_canonical_copy_and_card(tmp_path, synth_file):
    source = synth_file("openpose_body_coco18")
    destination = tmp_path / "canonical" / "openpose_body.safetensors"
    card = convert(source, destination)
    on_disk = json.loads(card_path(destination).read_text())
    assert on_disk == card
    assert card["entry"] == "openpose_body_coco18" and card["tensors"] == 184
    assert card["source"]["sha256"] == file_sha256(source)
    assert card["sha256"] == file_sha256(destination)
    assert card["analysis"]["verdict"] == "identified"
    report = analyze(destination)
    assert (report.verdict, report.entry, report.container, report.prefix) == (
        "identified",
        "openpose_body_coco18",
        "safetensors",
        None,
    )
    _same_state(load_model(destination).module, load_model(source).module)


def test_convert_refuses_what_is_not_identified(tmp_path):
    _, path = _other_head(tmp_path)
    with pytest.raises(LoadRefusedError, match="only identified"):
        convert(path, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_torchscript_archive_is_read_without_executing_it(tmp_path, monkeypatch):
    scripted = torch.jit.trace(U2NETP(3, 1).eval(), torch.zeros(1, 3, 32, 32))
    path = tmp_path / "u2netp.pt"
    torch.jit.save(scripted, str(path))

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.jit.load must never be called on a checkpoint")

    monkeypatch.setattr(torch.jit, "load", forbidden)
    report = analyze(path)
    assert (report.verdict, report.entry, report.container) == ("identified", "u2netp", "torchscript")
    loaded = load_model(path)
    _same_state(loaded.module, scripted)
