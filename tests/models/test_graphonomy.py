"""Graphonomy CIHP-20: identified from its contents, loaded strictly, computes what the reference computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mycloset_assets.checkpoints import LoadedModel, analyze, load_model
from mycloset_assets.models.graphonomy import Graphonomy
from tests.conftest import assert_parity, load_manifest, parity_case

NAME = "graphonomy_cihp20"


@pytest.fixture(scope="module")
def loaded(synth_file) -> LoadedModel:
    return load_model(synth_file(NAME))


@pytest.fixture(scope="module")
def logits(loaded: LoadedModel) -> torch.Tensor:
    """The one full-size forward of the module, on the fixture's input."""
    with torch.no_grad():
        return loaded.module(parity_case(NAME).inputs["x"])


def test_published_file_is_identified(synth_file) -> None:
    analysis = analyze(synth_file(NAME))
    assert analysis.verdict == "identified"
    assert analysis.entry == NAME
    assert analysis.family == "graphonomy"
    assert analysis.match_rate == 1.0
    assert analysis.confidence >= 0.9
    assert (analysis.container, analysis.wrapper, analysis.prefix) == ("torch_legacy", None, None)
    assert analysis.total == analysis.tensors == len(load_manifest(NAME)["tensors"])
    assert not (analysis.missing or analysis.unexpected or analysis.mismatched)


@pytest.mark.parametrize(
    "layout",
    [
        {"container": "torch_zip", "prefix": "module."},
        {"container": "torch_zip", "wrapper": "state_dict"},
        {"container": "safetensors"},
    ],
    ids=["zip-module-prefix", "zip-state_dict", "safetensors"],
)
def test_resaved_file_is_identified(synth_file, layout: dict[str, str]) -> None:
    analysis = analyze(synth_file(NAME, **layout))
    assert (analysis.verdict, analysis.entry, analysis.match_rate) == ("identified", NAME, 1.0)


def test_module_layout_is_the_published_layout() -> None:
    with torch.device("meta"):
        network = Graphonomy()
    state = network.state_dict()
    published = [(t["key"], tuple(t["shape"])) for t in load_manifest(NAME)["tensors"]]
    ours = [(key, tuple(t.shape)) for key, t in state.items() if not key.endswith("num_batches_tracked")]
    assert ours == published
    for name in ("adj_target", "adj_source", "adj_transfer"):
        assert name not in state
        assert getattr(network, name).device.type == "cpu"


def test_adjacency_constants_are_the_reference_inference_inputs(loaded: LoadedModel) -> None:
    expected = parity_case(NAME).expected
    network = loaded.module
    for ours, reference in (
        ("adj_target", "adj1_target"),
        ("adj_source", "adj2_source"),
        ("adj_transfer", "adj3_transfer"),
    ):
        np.testing.assert_array_equal(getattr(network, ours).numpy(), expected[reference][0, 0])


def test_loaded_strictly_in_eval_mode(loaded: LoadedModel) -> None:
    assert loaded.analysis.verdict == "identified"
    assert not loaded.module.training
    assert not any(t.is_meta for t in [*loaded.module.parameters(), *loaded.module.buffers()])


def test_parity_with_reference(logits: torch.Tensor) -> None:
    assert logits.shape == (1, 20, 256, 256)
    assert_parity(NAME, {"logits": F.avg_pool2d(logits, 2), "logits_center": logits[:, :, 96:160, 96:160]})


def test_source_graph_conv3_and_stored_transfer_are_unused(loaded: LoadedModel) -> None:
    """As in the reference forward: conv2 runs twice on the source graph, the constant transfer is applied."""
    network = loaded.module
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    replaced = {
        "source_graph_conv3.weight": torch.zeros_like(network.source_graph_conv3.weight),
        "transpose_graph.adj": torch.ones_like(network.transpose_graph.adj),
    }
    with torch.no_grad():
        torch.testing.assert_close(torch.func.functional_call(network, replaced, (x,)), network(x), rtol=0, atol=0)
