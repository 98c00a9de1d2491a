"""The model store against damage: a damaged blob, a lost or damaged catalogue, a hostile file to register."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from mycloset_assets.checkpoints.convert import file_sha256
from mycloset_assets.checkpoints.manager import CatalogueError, ModelManager, RegistrationRefusedError
from mycloset_assets.checkpoints.manager_store import IntegrityError
from mycloset_assets.cli import main as cli_main

from . import hostile

TRUNK = "torchvision_alexnet_features"


@pytest.fixture
def manager(tmp_path: Path) -> ModelManager:
    return ModelManager(tmp_path / "home", lock_timeout_s=30)


def _damage(path: Path) -> None:
    path.chmod(0o644)
    with path.open("r+b") as handle:
        handle.seek(path.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(1, 1))


def test_re_registering_good_bytes_replaces_a_damaged_blob(manager, synth_file):
    source = synth_file(TRUNK)
    model = manager.register(source, name="trunk")
    _damage(model.path)
    assert [c.status for c in manager.verify().checks] == ["mismatch"]
    manager.remove("trunk", 1)
    again = manager.register(source, name="trunk")
    assert again.path == model.path and file_sha256(again.path) == model.sha256
    assert manager.verify().ok


def test_a_damaged_stored_file_is_refused_with_its_real_sha256(manager, synth_file):
    model = manager.register(synth_file(TRUNK), name="trunk")
    _damage(model.path)
    actual = file_sha256(model.path)
    assert [m.name for m in manager.active()] == ["trunk"], "listing does not hash"
    with pytest.raises(IntegrityError, match=f"hashes to {actual}, not {model.sha256}"):
        ModelManager(manager.root, verify_files=True).active()


def test_try_on_from_the_store_refuses_a_damaged_file(manager, synth_file, tmp_path, capsys):
    from PIL import Image

    model = manager.register(synth_file(TRUNK), name="trunk")
    _damage(model.path)
    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 96), "white").save(photo)
    status = cli_main(["try-on", str(photo), str(photo), "-o", str(tmp_path / "out"), "--home", str(manager.root)])
    assert status == 1
    assert f"hashes to {file_sha256(model.path)}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("how", ["deleted", "emptied", "garbage"])
def test_a_lost_catalogue_is_an_error_until_rebuilt(manager, synth_file, how, capsys):
    model = manager.register(synth_file(TRUNK), name="trunk")
    if how == "deleted":
        manager.catalogue.unlink()
    elif how == "emptied":
        manager.catalogue.write_bytes(b"")
    else:
        manager.catalogue.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    with pytest.raises(CatalogueError, match="mycloset models verify --rebuild"):
        manager.active()
    with pytest.raises(CatalogueError):
        manager.verify(clean=True)
    assert manager.store.shas() == {model.sha256}, "nothing was deleted"
    assert cli_main(["models", "list", "--home", str(manager.root)]) == 1
    assert str(manager.root) in capsys.readouterr().err
    assert cli_main(["models", "verify", "--rebuild", "--home", str(manager.root)]) == 0
    rebuilt = manager.active()
    assert [(m.name, m.version, m.sha256, m.entry) for m in rebuilt] == [("trunk", 1, model.sha256, TRUNK)]


def test_rebuild_analyses_stored_files_without_a_card(manager, synth_file):
    model = manager.register(synth_file(TRUNK), name="trunk")
    for card in manager.cards.glob("*/*.json"):
        card.unlink()
    manager.catalogue.unlink()
    assert [(m.name, m.sha256) for m in manager.rebuild()] == [(TRUNK, model.sha256)]


def test_clean_keeps_files_the_catalogue_does_not_know_without_force(manager, synth_file):
    model = manager.register(synth_file(TRUNK), name="trunk")
    with sqlite3.connect(manager.catalogue) as db:
        db.execute("DELETE FROM versions")
    report = manager.verify(clean=True)
    assert report.orphans == [model.sha256] and manager.store.shas() == {model.sha256}
    manager.verify(clean=True, force=True)
    assert manager.store.shas() == set()


def test_register_refuses_a_hostile_file_before_copying_it(manager, tmp_path):
    bomb = hostile.torch_zip(
        tmp_path / "bomb.pth", b"\x80\x02" + hostile.pickle_global("builtins", "bytearray") + b"J\x00\x00\x00\x40\x85R."
    )
    with pytest.raises(RegistrationRefusedError, match="analysis bound memory"):
        manager.register(bomb)
    assert not manager.store.staging.exists() or not any(manager.store.staging.iterdir())


def test_register_of_a_large_sparse_file_does_not_copy_it(manager, tmp_path):
    sparse = tmp_path / "sparse.pth"
    with sparse.open("wb") as handle:
        handle.truncate(4 << 30)
    report, growth, seconds = hostile.measured(lambda: _refusal(manager, sparse))
    assert report["verdict"] == "not_a_checkpoint"
    assert seconds <= hostile.SECONDS and growth <= hostile.PEAK_GROWTH_MIB
    assert not manager.store.staging.exists() or not any(manager.store.staging.iterdir())


def _refusal(manager: ModelManager, path: Path) -> dict:
    try:
        manager.register(path)
    except RegistrationRefusedError as exc:
        return json.loads(json.dumps(exc.analysis.to_dict()))
    raise AssertionError("registered")
