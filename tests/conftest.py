"""Shared fixtures: synthesized checkpoints in published layouts, parity fixtures and their tolerance rule.

Everything comes from ``tests/fixtures`` (copied from the zoo's reference data), so a fresh clone runs the
suite without ``../shared``.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from upath import UPath

from mycloset_assets.checkpoints.synth import parity_input, write_checkpoint
from mycloset_assets.package_data import manifests_folder

FIXTURES = Path(__file__).parent / "fixtures"
MANIFESTS = manifests_folder()
PARITY = FIXTURES / "parity"


def load_manifest(name: str) -> dict[str, Any]:
    """The published layout of checkpoint ``name`` (``mycloset_assets/manifests/NAME.json``)."""
    return json.loads((MANIFESTS / f"{name}.json").read_text())


def manifest_names() -> list[str]:
    """Every manifest name, sorted."""
    return sorted(path.stem for path in MANIFESTS.glob("*.json"))


@dataclass
class ParityCase:
    """A parity fixture: its JSON, the reference outputs and the inputs they were computed on."""

    name: str
    spec: dict[str, Any]
    expected: dict[str, np.ndarray]
    inputs: dict[str, torch.Tensor]

    def tolerance(self, output: str) -> float:
        """The allowed max |got - want| of one output under the JSON's rule."""
        rule = self.spec["tolerance"]
        for item in self.spec["outputs"]:
            if item["name"] == output and item.get("tolerance"):
                rule = item["tolerance"]
        want = np.abs(self.expected[output]).max()
        return max(rule.get("abs", 0.0), rule.get("rel_absmax", 0.0) * float(want))


def parity_case(name: str) -> ParityCase:
    """Load ``tests/fixtures/parity/NAME.{json,npz}`` and rebuild its inputs."""
    spec = json.loads((PARITY / f"{name}.json").read_text())
    with np.load(PARITY / f"{name}.npz") as data:
        expected = {key: data[key] for key in data.files}
    inputs = {}
    for item in spec["inputs"]:
        if "value" in item:
            inputs[item["name"]] = torch.as_tensor(np.asarray(item["value"]))
        elif item["name"] in expected:
            inputs[item["name"]] = torch.from_numpy(expected[item["name"]])
        else:
            inputs[item["name"]] = parity_input(item["shape"], item["seed"])
    return ParityCase(name, spec, expected, inputs)


def assert_parity(name: str | ParityCase, outputs: Mapping[str, torch.Tensor | np.ndarray]) -> dict[str, float]:
    """Assert every output in ``outputs`` is within the fixture's tolerance; returns max errors by output."""
    case = parity_case(name) if isinstance(name, str) else name
    errors = {}
    for output, got in outputs.items():
        array = got.detach().cpu().float().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
        want = case.expected[output]
        assert array.shape == want.shape, f"{output}: shape {array.shape} != {want.shape}"
        error = float(np.abs(array.astype(np.float64) - want.astype(np.float64)).max())
        limit = case.tolerance(output)
        assert error <= limit, f"{case.name}/{output}: max error {error:.3g} > tolerance {limit:.3g}"
        errors[output] = error
    return errors


@pytest.fixture(scope="session")
def synth_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Path]]:
    """``synth_file(name, seed=0, container=..., wrapper=..., prefix=..., filename=...)`` -> a checkpoint
    written by the project's writer in manifest ``name``'s layout (or the re-laid-out variant asked for);
    files are written once per session, shared, and deleted at the end (the whole zoo is about 5 GB)."""
    root = tmp_path_factory.mktemp("zoo")
    written: dict[tuple[Any, ...], Path] = {}

    def make(name: str, seed: int = 0, *, filename: str | None = None, **layout: Any) -> Path:
        key = (name, seed, filename, tuple(sorted(layout.items())))
        if key not in written:
            folder = root / f"{len(written):03d}"
            manifest = load_manifest(name)
            out = folder / (filename or manifest["published_as"]["file"])
            written[key] = write_checkpoint(manifest, out, seed, **layout)
        return written[key]

    yield make
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def memory_root() -> Iterator[UPath]:
    """A fresh folder of fsspec's process-wide ``memory://`` filesystem, removed after the test."""
    root = UPath(f"memory://mycloset-{uuid.uuid4().hex}")
    yield root
    if root.fs.exists(root.path):
        root.fs.rm(root.path, recursive=True)
