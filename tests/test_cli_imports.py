"""``mycloset --help`` and every ``mycloset CMD --help`` import neither torch nor Dagster; the constants the
parsers name instead of importing stay equal to the ones they stand for."""

import json
import subprocess
import sys
from pathlib import Path

from mycloset_assets.checkpoints.pipelines import PIPELINES
from mycloset_assets.checkpoints.synth import CONTAINERS
from mycloset_assets.cli import CONTAINERS as CLI_CONTAINERS
from mycloset_assets.engine.options import POSE_ESTIMATOR_CHOICES, TryOnOptions
from mycloset_assets.tryon_cli import DEFAULT_MAX_SIDE, PIPELINE_CHOICES
from mycloset_assets.tryon_cli import POSE_ESTIMATOR_CHOICES as CLI_POSE_ESTIMATORS

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "dagster", "safetensors", "numpy", "cv2")

PROBE = """
import argparse, contextlib, io, json, sys
from mycloset_assets.cli import build_parser, main

def commands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from commands(sub, (*prefix, name))

helps = {}
for command in [(), *commands(build_parser())]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main([*command, "--help"])
        except SystemExit as exit:
            assert exit.code == 0, (command, exit.code)
    helps[" ".join(command)] = out.getvalue()
print(json.dumps({"loaded": sorted(m for m in sys.modules if m.split(".")[0] in HEAVY), "helps": helps}))
"""


def test_help_of_every_command_imports_neither_torch_nor_dagster(tmp_path):
    code = f"HEAVY = {HEAVY!r}\n{PROBE}"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["loaded"] == []
    helps = result["helps"]
    expected = {"analyze", "convert", "synth", "synth-zoo", "registry", "models", "models list", "try-on", "demo"}
    assert expected <= set(helps)
    assert "usage: mycloset try-on" in helps["try-on"] and "{cpvton,vitonhd}" in helps["try-on"]
    assert "--no-start" in helps["demo"] and "--home" in helps["models list"]


def test_parser_constants_equal_what_they_stand_for():
    assert tuple(sorted(PIPELINES)) == PIPELINE_CHOICES
    assert TryOnOptions.max_side == DEFAULT_MAX_SIDE
    assert CLI_POSE_ESTIMATORS == POSE_ESTIMATOR_CHOICES
    assert CLI_CONTAINERS == CONTAINERS
