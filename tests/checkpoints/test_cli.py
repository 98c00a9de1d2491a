"""The ``mycloset`` command as users run it: a real subprocess, exit codes, exact JSON keys."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.checkpoints.test_analysis import JSON_KEYS


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mycloset_assets.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_analyze_json_one_object_per_path_in_order(tmp_path, synth_file):
    html = tmp_path / "tom_final.pth"
    html.write_text("<html><body>quota exceeded</body></html>")
    good = synth_file("u2netp")
    result = _run("analyze", str(good), str(html), "--json")
    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout)
    assert [r["path"] for r in reports] == [str(good), str(html)]
    assert all(list(r) == JSON_KEYS for r in reports)
    assert [r["verdict"] for r in reports] == ["identified", "not_a_checkpoint"]
    assert reports[1]["container"] == "html"


def test_analyze_table_and_usage_errors(tmp_path, synth_file):
    table = _run("analyze", str(synth_file("openpose_hand")))
    assert table.returncode == 0
    assert "identified" in table.stdout and "openpose_hand" in table.stdout
    assert "\n    weights: synthesized by this project (synth.py's rule, seed 0)" in table.stdout
    missing = _run("analyze", str(tmp_path / "nope.pth"), "--json")
    assert missing.returncode == 2 and "not a file" in missing.stderr
    assert _run("analyze").returncode == 2


def test_convert_command(tmp_path, synth_file):
    out = tmp_path / "hand.safetensors"
    result = _run("convert", str(synth_file("openpose_hand")), str(out))
    assert result.returncode == 0, result.stderr
    assert out.exists() and out.with_suffix(".json").exists()
    bad = _run("convert", str(synth_file("openpose_hand")), str(tmp_path / "hand.bin"))
    assert bad.returncode == 2


def test_convert_refusal_is_a_clear_error(tmp_path):
    html = tmp_path / "x.pth"
    html.write_text("<html></html>")
    result = _run("convert", str(html), str(tmp_path / "x.safetensors"))
    assert result.returncode == 1
    assert "only identified checkpoints are converted" in result.stderr
