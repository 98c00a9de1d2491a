"""A wheel built from the checkout works without the source tree: its registry, published layouts and demo photos
ship inside it, so ``mycloset analyze`` and ``mycloset demo --no-start`` work from any working directory."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The wheel of a copy of the checkout (no build/ left-overs), installed into its own folder."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "mycloset_assets", source / "mycloset_assets", ignore=shutil.ignore_patterns("__pycache__"))
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MYCLOSET_", "PYTHON"))}
    _run([*pip, "wheel", str(source), "--no-deps", *isolation, "-w", str(work / "dist")], work, env)
    (wheel,) = (work / "dist").glob("mycloset_assets-*.whl")
    target = work / "site"
    _run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], work, env)
    return target, {**env, "PYTHONPATH": str(target)}


def test_the_installed_package_is_the_wheel_and_holds_its_data(installed, tmp_path):
    target, env = installed
    code = (
        "import mycloset_assets, mycloset_assets.package_data as data; print(mycloset_assets.__file__); "
        "print(len(list(data.registry_folder().glob('*.yaml'))), len(list(data.manifests_folder().glob('*.json'))))"
    )
    where, counts = _run([sys.executable, "-c", code], tmp_path, env).splitlines()
    assert Path(where).is_relative_to(target)
    assert counts.split() == [
        str(len(list((ROOT / "mycloset_assets" / sub).glob(ext))))
        for sub, ext in (("registry", "*.yaml"), ("manifests", "*.json"))
    ]


@pytest.mark.slow
def test_installed_mycloset_identifies_a_synthesized_checkpoint_and_lays_out_the_demo(installed, tmp_path):
    target, env = installed
    mycloset = [sys.executable, str(target / "bin" / "mycloset")]
    manifest = target / "mycloset_assets" / "manifests" / "u2netp.json"
    _run([*mycloset, "synth", str(manifest), "zoo/u2netp.pth", "--seed", "2"], tmp_path, env)
    table = _run([*mycloset, "analyze", "zoo/u2netp.pth"], tmp_path, env)
    assert "identified  u2netp" in table
    assert "weights: synthesized by this project (synth.py's rule, seed 2)" in table

    printed = _run([*mycloset, "demo", "--no-start", "--no-mediapipe", "--home", "demo"], tmp_path, env)
    assert f"model store:  {tmp_path / 'demo' / 'models'}" in printed and "dagster dev -w" in printed
    listed = _run([*mycloset, "models", "list", "--home", str(tmp_path / "demo" / "models")], tmp_path, env)
    names = {line.split()[0] for line in listed.splitlines()[1:]}
    assert names == {"openpose_body_coco18", "schp_lip20", "u2netp", "cpvton_gmm", "cpvton_tom"}
    assert (tmp_path / "demo" / "inbox" / "person" / "astronaut.png").is_file()
