"""``mycloset try-on`` output folder: checked before anything runs, replaced as a whole, the user's umask."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from PIL import Image

from mycloset_assets.cli import main as cli_main
from mycloset_assets.tryon_cli import _put_in_place, _staging_folder
from mycloset_assets.vision.images import save_png


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "person.png"
    Image.new("RGB", (64, 96), "white").save(path)
    return path


def _previous_run(folder):
    folder.mkdir()
    (folder / "report.json").write_text('{"run": 1}\n')
    (folder / "tryon.png").write_bytes(b"old")
    return folder


def test_an_output_path_that_is_a_file_fails_before_running(tmp_path, photo, capsys):
    target = tmp_path / "out"
    target.write_text("not a folder")
    assert cli_main(["try-on", str(photo), str(photo), "-o", str(target), "--checkpoints", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "exists and is not a folder" in err and "s] " not in err, "no step ran"


def test_a_folder_of_other_files_is_refused_and_left_alone(tmp_path, photo, capsys):
    target = tmp_path / "photos"
    target.mkdir()
    (target / "holiday.png").write_bytes(b"mine")
    assert cli_main(["try-on", str(photo), str(photo), "-o", str(target), "-q"]) == 1
    assert "not the outputs of a try-on run" in capsys.readouterr().err
    assert [p.name for p in target.iterdir()] == ["holiday.png"]


def test_a_failed_run_leaves_the_previous_outputs_and_no_staging(tmp_path, photo, capsys):
    target = _previous_run(tmp_path / "out")
    empty = tmp_path / "zoo"
    empty.mkdir()
    assert cli_main(["try-on", str(photo), str(photo), "-o", str(target), "--checkpoints", str(empty), "-q"]) == 1
    assert (target / "report.json").read_text() == '{"run": 1}\n' and (target / "tryon.png").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "person.png", "zoo"]


def test_a_new_run_replaces_the_previous_folder_as_a_whole_with_the_umask(tmp_path):
    target = _previous_run(tmp_path / "out")
    (target / "pose.png").write_bytes(b"old pose")
    staging = _staging_folder(target)
    save_png(np.zeros((4, 4, 3), dtype=np.uint8), staging / "tryon.png")
    (staging / "report.json").write_text("{}\n")
    old = os.umask(0o027)
    try:
        _put_in_place(staging, target)
    finally:
        os.umask(old)
    assert sorted(p.name for p in target.iterdir()) == ["report.json", "tryon.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert stat.S_IMODE((target / "tryon.png").stat().st_mode) == 0o640
    assert stat.S_IMODE(target.stat().st_mode) == 0o750


def test_save_png_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_png(np.zeros((2, 2), dtype=np.uint8), tmp_path / "a.png")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
