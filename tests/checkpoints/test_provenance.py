"""Provenance of a checkpoint: the published file, synthesized by this project, different, or unknown."""

from __future__ import annotations

import shutil
from collections import OrderedDict

import pytest
import torch

from mycloset_assets.checkpoints.convert import file_sha256
from mycloset_assets.checkpoints.provenance import (
    DIFFERENT,
    PUBLISHED,
    SYNTHESIZED,
    UNKNOWN,
    synthesis_seed,
    weights_provenance,
)
from mycloset_assets.checkpoints.registry import REGISTRY_ENV
from mycloset_assets.checkpoints.synth import synth_state_dict
from mycloset_assets.package_data import registry_folder
from tests.conftest import load_manifest

ENTRY = "u2netp"


@pytest.mark.parametrize(
    ("seed", "layout"),
    [(0, {}), (3, {}), (0, {"container": "safetensors"}), (5, {"prefix": "module."}), (1, {"container": "torch_zip"})],
)
def test_synthesized_files_are_recognised_with_their_seed(synth_file, seed, layout):
    path = synth_file(ENTRY, seed, **layout)
    assert synthesis_seed(path, ENTRY) == seed
    provenance = weights_provenance(path, ENTRY)
    assert (provenance.status, provenance.seed, provenance.sha256) == (SYNTHESIZED, seed, file_sha256(path))
    assert provenance.words.startswith(f"synthesized by this project (synth.py's rule, seed {seed})")
    assert provenance.to_dict()["published_sha256"] is None


def _other_values(tmp_path, scale: float) -> str:
    """The published layout, with every synthesized value scaled: the rule's values nowhere."""
    state = OrderedDict((key, tensor * scale) for key, tensor in synth_state_dict(load_manifest(ENTRY)).items())
    path = tmp_path / "u2netp.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return str(path)


def test_other_values_are_unknown_without_a_published_hash(tmp_path):
    path = _other_values(tmp_path, 1.0001)
    assert synthesis_seed(path, ENTRY) is None
    provenance = weights_provenance(path, ENTRY)
    assert (provenance.status, provenance.seed) == (UNKNOWN, None)
    assert "records no published sha256 for u2netp" in provenance.words


@pytest.fixture
def registry_with_hash(tmp_path, monkeypatch):
    """The project's registry with u2netp's published sha256 set to ``set_hash(sha)``."""
    folder = tmp_path / "registry"
    shutil.copytree(registry_folder(), folder)
    monkeypatch.setenv(REGISTRY_ENV, str(folder))

    def set_hash(sha256: str) -> None:
        text = (registry_folder() / f"{ENTRY}.yaml").read_text()
        (folder / f"{ENTRY}.yaml").write_text(text.replace("  sha256: null\n", f"  sha256: {sha256}\n"))

    return set_hash


def test_published_and_different_files(tmp_path, synth_file, registry_with_hash):
    published = _other_values(tmp_path, 0.5)
    registry_with_hash(file_sha256(published))
    assert weights_provenance(published, ENTRY).status == PUBLISHED
    assert weights_provenance(published, ENTRY).words.startswith("the published file")

    (tmp_path / "other").mkdir()
    other = _other_values(tmp_path / "other", 2.0)
    provenance = weights_provenance(other, ENTRY)
    assert (provenance.status, provenance.published_sha256) == (DIFFERENT, file_sha256(published))
    assert f"the registry records sha256 {file_sha256(published)}" in provenance.words

    synthesized = weights_provenance(synth_file(ENTRY), ENTRY)
    assert (synthesized.status, synthesized.seed) == (SYNTHESIZED, 0)


def test_a_file_of_another_layout_is_not_called_synthesized(synth_file):
    assert synthesis_seed(synth_file("cpvton_tom"), ENTRY) is None
    assert synthesis_seed(synth_file(ENTRY, 300), ENTRY) is None, "seeds beyond MAX_SEED are not searched"
