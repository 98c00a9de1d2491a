"""The store shares a read-only source's blocks instead of copying them, and copies a writable one."""

from __future__ import annotations

import os
from pathlib import Path

from mycloset_assets.checkpoints.convert import file_sha256
from mycloset_assets.checkpoints.manager import ModelManager
from mycloset_assets.checkpoints.manager_store import share_file

ENTRY = "lpips_alex_lin"


def _copy(source: Path, target: Path, mode: int) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())
    target.chmod(mode)
    return target


def test_share_file_links_only_files_nobody_may_write(tmp_path):
    writable = _copy(Path(__file__), tmp_path / "a" / "writable.py", 0o644)
    read_only = _copy(Path(__file__), tmp_path / "a" / "read_only.py", 0o444)
    (tmp_path / "b").mkdir()
    how = share_file(writable, tmp_path / "b" / "writable.py")
    assert how in (None, "reflink")
    assert (tmp_path / "b" / "writable.py").exists() == (how == "reflink")
    assert how == "reflink" or os.stat(writable).st_nlink == 1

    how = share_file(read_only, tmp_path / "b" / "read_only.py")
    assert how in ("reflink", "hardlink")
    assert (tmp_path / "b" / "read_only.py").read_bytes() == read_only.read_bytes()
    if how == "hardlink":
        assert os.stat(read_only).st_ino == os.stat(tmp_path / "b" / "read_only.py").st_ino


def test_registering_a_read_only_file_keeps_one_copy(tmp_path, synth_file):
    source = synth_file(ENTRY)
    writable = _copy(source, tmp_path / "zoo" / "writable" / source.name, 0o644)
    read_only = _copy(source, tmp_path / "zoo" / "read_only" / source.name, 0o444)
    manager = ModelManager(tmp_path / "store")

    stored = manager.store.path(manager.register(writable, name="copied").sha256)
    assert os.stat(stored).st_ino != os.stat(writable).st_ino and os.stat(writable).st_mode & 0o777 == 0o644
    manager.remove("copied", 1)

    model = manager.register(read_only, name="shared")
    stored = manager.store.path(model.sha256)
    assert model.sha256 == file_sha256(read_only) and manager.verify().ok
    if share_file(read_only, tmp_path / "probe") == "hardlink":
        assert os.stat(stored).st_ino == os.stat(read_only).st_ino
    assert manager.store.stale_staging() == [] and not any(manager.store.staging.iterdir())
