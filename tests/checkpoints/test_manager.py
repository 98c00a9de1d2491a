"""The model manager: content-addressed versions, refusals by analysis, dependencies, integrity, concurrency."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from mycloset_assets.checkpoints import analyze, load_registry
from mycloset_assets.checkpoints.convert import file_sha256
from mycloset_assets.checkpoints.manager import (
    DuplicateModelError,
    ModelManager,
    RegistrationRefusedError,
    RemovalRefusedError,
    UnknownModelError,
    default_home,
)
from mycloset_assets.checkpoints.manager_store import IntegrityError
from mycloset_assets.checkpoints.pipelines import (
    OPTIONAL_ROLES,
    PIPELINES,
    best_pipeline,
    describe_missing,
    missing_companions,
    pipeline_status,
    roles_of,
)

LIN = "lpips_alex_lin"
TRUNK = "torchvision_alexnet_features"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def manager(tmp_path: Path) -> ModelManager:
    return ModelManager(tmp_path / "home", lock_timeout_s=30)


def _lin(synth_file, seed: int) -> Path:
    return synth_file(LIN, seed)


def _staged_files(manager: ModelManager) -> list[Path]:
    return list(manager.store.staging.glob("*/*"))


def _assert_nothing_stored(manager: ModelManager) -> None:
    assert manager.active() == [] and manager.store.shas() == set() and _staged_files(manager) == []


def test_register_update_rollback_verify_round_trip(manager, synth_file):
    first, second = _lin(synth_file, 0), _lin(synth_file, 1)
    v1 = manager.register(first)
    assert (v1.name, v1.version, v1.entry, v1.family, v1.verdict, v1.active) == (
        LIN,
        1,
        LIN,
        "lpips",
        "identified",
        True,
    )
    assert v1.sha256 == file_sha256(first) and v1.size == first.stat().st_size
    assert v1.path.name == v1.sha256 and v1.path.read_bytes() == first.read_bytes()
    assert v1.path.stat().st_mode & 0o222 == 0, "stored files are read-only"
    assert v1.analysis == analyze(first).to_dict() and v1.source == str(first.resolve())

    v2 = manager.update(LIN, second)
    assert (v2.version, v2.active, v2.sha256) == (2, True, file_sha256(second))
    assert [(m.version, m.active) for m in manager.versions(LIN)] == [(1, False), (2, True)]
    assert v1.path.read_bytes() == first.read_bytes(), "the old version's file is kept"

    with pytest.raises(DuplicateModelError, match="already lpips_alex_lin v1"):
        manager.update(LIN, first)
    with pytest.raises(DuplicateModelError, match="already registered"):
        manager.register(second)

    assert manager.rollback(LIN).version == 1
    reopened = ModelManager(manager.root)
    assert [(m.name, m.version) for m in reopened.active()] == [(LIN, 1)]
    assert reopened.get(LIN).sha256 == v1.sha256
    assert reopened.rollback(LIN, to=2).active
    with pytest.raises(UnknownModelError, match="no version 7; its versions are 1, 2"):
        reopened.rollback(LIN, to=7)

    report = reopened.verify()
    assert report.ok and [(c.version, c.status) for c in report.checks] == [(1, "ok"), (2, "ok")]
    assert (report.orphans, report.stale) == ([], [])


def test_update_refuses_another_family_and_unknown_names(manager, synth_file):
    manager.register(_lin(synth_file, 0), name="metric")
    with pytest.raises(RegistrationRefusedError, match="metric holds lpips checkpoints"):
        manager.update("metric", synth_file("u2netp"))
    with pytest.raises(UnknownModelError, match="register it first"):
        manager.update("nothing", _lin(synth_file, 1))
    with pytest.raises(ValueError, match="model name"):
        manager.register(_lin(synth_file, 1), name="../escape")
    assert [m.version for m in manager.versions("metric")] == [1]


def test_impostor_is_refused_with_the_analyzers_reason(manager, tmp_path):
    from torchvision import models

    torch.manual_seed(0)
    impostor = tmp_path / "openpose.pth"
    torch.save(models.resnet18(weights=None).state_dict(), impostor)
    with pytest.raises(RegistrationRefusedError) as refused:
        manager.register(impostor)
    analysis = analyze(impostor)
    assert analysis.verdict == "impostor" and analysis.reason.endswith("not an OpenPose checkpoint")
    assert refused.value.analysis.to_dict() == analysis.to_dict()
    assert "'impostor'" in str(refused.value) and analysis.reason in str(refused.value)
    _assert_nothing_stored(manager)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["torch_zip", "plain_pickle"])
def test_hostile_pickle_is_refused_and_never_executed(manager, tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "gmm_final.pth"
    payload = {"trap": _Payload(marker), "state_dict": {"conv.weight": torch.zeros(2)}}
    if how == "plain_pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    with pytest.raises(RegistrationRefusedError, match="'unsafe'") as refused:
        manager.register(path)
    assert "posix.system" in str(refused.value) and "not executed" in str(refused.value)
    assert not marker.exists()
    _assert_nothing_stored(manager)


def test_broken_unknown_and_partial_files(manager, tmp_path, synth_file):
    html = tmp_path / "tom_final.pth"
    html.write_text("<!DOCTYPE html><html><head><title>Quota exceeded</title></head></html>\n")
    data = _lin(synth_file, 0).read_bytes()
    truncated = tmp_path / "alex.pth"
    truncated.write_bytes(data[: len(data) // 2])
    unknown = tmp_path / "mystery.pth"
    torch.save({"foo.weight": torch.zeros(3, 3), "bar.bias": torch.zeros(7)}, unknown)
    for path, verdict in ((html, "not_a_checkpoint"), (truncated, "corrupt"), (unknown, "unknown")):
        with pytest.raises(RegistrationRefusedError, match=f"'{verdict}'") as refused:
            manager.register(path, name="x")
        assert refused.value.analysis.reason in str(refused.value)
    _assert_nothing_stored(manager)

    state = torch.load(_lin(synth_file, 0), map_location="cpu", weights_only=True)
    del state["lin4.model.1.weight"]
    partial = tmp_path / "partial.pth"
    torch.save(state, partial)
    with pytest.raises(RegistrationRefusedError, match="only a partial match .*--allow-partial"):
        manager.register(partial)
    model = manager.register(partial, allow_partial=True)
    assert (model.verdict, model.entry, model.analysis["missing"]) == ("partial", LIN, ["lin4.model.1.weight"])


def test_removal_respects_dependencies_and_active_versions(manager, synth_file):
    lin = manager.register(_lin(synth_file, 0))
    before = manager.dependencies()
    assert [item.missing for item in before.models] == [(TRUNK,)] and not before.ok

    trunk = manager.register(synth_file(TRUNK), name="alexnet")
    deps = manager.dependencies()
    assert deps.ok and {item.model.name: item.provided_by for item in deps.models} == {
        "alexnet": {},
        LIN: {TRUNK: "alexnet v1"},
    }
    with pytest.raises(
        RemovalRefusedError,
        match=r"alexnet v1 \(torchvision_alexnet_features\) is needed by "
        r"lpips_alex_lin v1 \(lpips_alex_lin\)",
    ) as refused:
        manager.remove("alexnet", 1)
    assert [item.label for item in refused.value.dependants] == ["lpips_alex_lin v1"]
    assert trunk.path.is_file() and manager.get("alexnet").active

    manager.update(LIN, _lin(synth_file, 1))
    with pytest.raises(RemovalRefusedError, match="active version of lpips_alex_lin; roll back first"):
        manager.remove(LIN, 2)
    removed = manager.remove(LIN, 1)
    assert removed.label == "lpips_alex_lin v1" and not lin.path.exists()
    assert [m.version for m in manager.versions(LIN)] == [2]

    manager.remove(LIN, 2)
    manager.remove("alexnet", 1)
    assert manager.active() == [] and manager.store.shas() == set()
    assert manager.register(_lin(synth_file, 2)).version == 3, "versions are never reused"


def test_two_names_share_one_stored_file(manager, synth_file):
    path = _lin(synth_file, 0)
    a, b = manager.register(path, name="a"), manager.register(path, name="b")
    assert a.path == b.path and manager.store.shas() == {a.sha256}
    manager.remove("a", 1)
    assert b.path.is_file() and manager.verify().ok


def test_verify_detects_a_tampered_file_and_backup_refuses_it(manager, synth_file, tmp_path):
    model = manager.register(_lin(synth_file, 0))
    manager.update(LIN, _lin(synth_file, 1))
    model.path.chmod(0o644)
    data = bytearray(model.path.read_bytes())
    data[-10] ^= 0xFF
    model.path.write_bytes(bytes(data))

    report = manager.verify()
    assert not report.ok
    assert [(c.version, c.status) for c in report.problems] == [(1, "mismatch")]
    assert report.problems[0].actual == file_sha256(model.path) != model.sha256
    assert manager.verify(LIN).to_dict()["checks"][1]["status"] == "ok"

    with pytest.raises(IntegrityError, match="was altered"):
        manager.backup(LIN, tmp_path / "backup", version=1)
    assert list((tmp_path / "backup").iterdir()) == []

    model.path.unlink()
    assert [c.status for c in manager.verify().problems] == ["missing"]


def test_backup_writes_the_file_and_its_card(manager, synth_file, tmp_path):
    source = _lin(synth_file, 0)
    manager.register(source, name="metric")
    manager.update("metric", _lin(synth_file, 1))
    backup = manager.backup("metric", tmp_path / "out", version=1)
    assert backup.file == tmp_path / "out" / "metric-v1.pth" and backup.file.read_bytes() == source.read_bytes()
    card = json.loads(backup.card.read_text())
    assert backup.card.name == "metric-v1.card.json"
    assert {k: card[k] for k in ("format", "name", "version", "active", "file", "sha256", "entry", "family")} == {
        "format": "mycloset-model-card/1",
        "name": "metric",
        "version": 1,
        "active": False,
        "file": "metric-v1.pth",
        "sha256": file_sha256(source),
        "entry": LIN,
        "family": "lpips",
    }
    assert card["requires"] == [TRUNK] and card["analysis"]["verdict"] == "identified"
    assert card["size"] == source.stat().st_size and card["source"] == str(source.resolve())
    again = manager.backup("metric", tmp_path / "out", version=1)
    assert again.file.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["metric-v1.card.json", "metric-v1.pth"]


def test_default_home_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MYCLOSET_HOME", str(tmp_path / "h"))
    assert default_home() == tmp_path / "h" and ModelManager().root == tmp_path / "h"
    monkeypatch.delenv("MYCLOSET_HOME")
    assert default_home() == Path.home() / ".mycloset"
    assert ModelManager(tmp_path / "fresh").active() == [] and not (tmp_path / "fresh").exists()


def _race(home: str, operation: str, name: str, path: str, barrier, results) -> None:
    manager = ModelManager(home, lock_timeout_s=120)
    barrier.wait(timeout=120)
    try:
        model = manager.register(path, name=name) if operation == "register" else manager.update(name, path)
        results.put((name, model.version, model.sha256))
    except Exception as exc:
        results.put((name, None, repr(exc)))


def test_processes_registering_at_once_lose_nothing(manager, synth_file):
    first, update_a, update_b, shared_v1 = (str(_lin(synth_file, seed)) for seed in range(4))
    manager.register(shared_v1, name="shared")
    jobs = [("register", "a", first), ("update", "shared", update_a), ("update", "shared", update_b)]
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(len(jobs)), context.Queue()
    workers = [context.Process(target=_race, args=(str(manager.root), *job, barrier, results)) for job in jobs]
    for worker in workers:
        worker.start()
    outcomes = sorted(results.get(timeout=300) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert [(name, version) for name, version, _ in outcomes] == [("a", 1), ("shared", 2), ("shared", 3)], outcomes
    assert [(m.name, m.version) for m in manager.active()] == [("a", 1), ("shared", 3)]
    shared = manager.versions("shared")
    assert shared[0].sha256 == file_sha256(shared_v1)
    assert sorted(m.sha256 for m in shared[1:]) == sorted(file_sha256(p) for p in (update_a, update_b))
    report = manager.verify()
    assert report.ok and len(report.checks) == 4 and (report.orphans, report.stale) == ([], [])


_KILLED_MID_COPY = """
import os, signal, sys
from mycloset_assets.checkpoints.manager import ModelManager
from mycloset_assets.checkpoints.manager_store import file_lock

class DiesMidway:
    def __init__(self):
        self.sent = 0
    def read(self, size):
        if self.sent >= 3 * size:
            os.kill(os.getpid(), signal.SIGKILL)
        self.sent += size
        return b"x" * size

manager = ModelManager(sys.argv[1])
with file_lock(manager.lock_path):
    manager.store.stage_stream(DiesMidway(), "gmm_final.pth")
"""

_KILLED_BEFORE_COMMIT = """
import os, signal, sqlite3, sys
from pathlib import Path
from mycloset_assets.checkpoints.manager import ModelManager
from mycloset_assets.checkpoints.manager_store import file_lock

manager = ModelManager(sys.argv[1])
with file_lock(manager.lock_path):
    staged = manager.store.stage(Path(sys.argv[2]))
    manager.store.commit(staged)
    db = sqlite3.connect(manager.catalogue, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO versions SELECT name, 99, entry, family, verdict, ?, size, source, created, analysis "
               "FROM versions WHERE version = 1", (staged.sha256,))
    db.execute("UPDATE names SET active = 99, next_version = 100")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _python(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_killed_writes_leave_the_catalogue_consistent(manager, synth_file):
    model = manager.register(_lin(synth_file, 0))
    state = [m.to_dict() for m in manager.versions(LIN)]

    mid_copy = _python(_KILLED_MID_COPY, str(manager.root))
    assert mid_copy.returncode == -signal.SIGKILL, mid_copy.stderr
    before_commit = _python(_KILLED_BEFORE_COMMIT, str(manager.root), str(_lin(synth_file, 1)))
    assert before_commit.returncode == -signal.SIGKILL, before_commit.stderr
    assert manager.catalogue.with_name("catalogue.sqlite-journal").exists(), "the killed transaction left its journal"

    assert [m.to_dict() for m in manager.versions(LIN)] == state
    report = manager.verify()
    assert report.ok and [c.version for c in report.checks] == [1]
    assert report.orphans == [file_sha256(_lin(synth_file, 1))] and len(report.stale) == 1
    assert "gmm_final.pth" in {p.name for p in Path(report.stale[0]).iterdir()}

    cleaned = manager.verify(clean=True, force=True)
    assert cleaned.cleaned and manager.store.shas() == {model.sha256} and manager.store.stale_staging() == []
    assert not any(manager.store.staging.iterdir())
    quick = ModelManager(manager.root, lock_timeout_s=5)
    assert quick.update(LIN, _lin(synth_file, 1)).version == 2, "the dead processes' lock is free"
    with sqlite3.connect(manager.catalogue) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


_REGISTER = """
import sys
from mycloset_assets.checkpoints.manager import ModelManager
ModelManager(sys.argv[1]).register(sys.argv[2], name="trunk")
"""


def _copying(manager: ModelManager) -> bool:
    try:
        staged = _staged_files(manager)
    except FileNotFoundError:  # a staging folder was moved away while it was listed: the copy is over
        return False
    for path in staged:
        try:
            if path.stat().st_size > 0:
                return True
        except FileNotFoundError:
            continue
    return False


def test_register_killed_at_any_moment_is_all_or_nothing(manager, synth_file):
    source = synth_file(TRUNK)
    process = subprocess.Popen([sys.executable, "-c", _REGISTER, str(manager.root), str(source)], cwd=REPO)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and not _copying(manager):
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)

    registered = [m for m in manager.active() if m.name == "trunk"]
    if registered:
        assert registered[0].sha256 == file_sha256(source) and manager.verify().ok
    manager.verify(clean=True, force=True)
    assert manager.store.shas() == {m.sha256 for m in registered}
    assert manager.store.stale_staging() == []
    if not registered:
        assert manager.register(source, name="trunk").sha256 == file_sha256(source)


def test_pipeline_tables_name_registry_entries():
    registry = load_registry()
    tables = [*PIPELINES.values(), OPTIONAL_ROLES]
    assert {entry for roles in tables for ids in roles.values() for entry in ids} <= registry.keys()
    assert set(PIPELINES["cpvton"]) == {"pose", "parsing", "garment_mask", "gmm", "tom"}
    assert set(PIPELINES["vitonhd"]) == {"pose", "parsing", "garment_mask", "seg", "gmm", "alias"}


def test_pipeline_status_says_what_is_complete_and_what_is_missing():
    cpvton = ["openpose_body_coco18", "graphonomy_cihp20", "u2netp", "cpvton_gmm", "cpvton_tom", "lpips_alex_lin"]
    status = pipeline_status("cpvton", cpvton)
    assert status.complete and status.roles == {
        "pose": "openpose_body_coco18",
        "parsing": "graphonomy_cihp20",
        "garment_mask": "u2netp",
        "gmm": "cpvton_gmm",
        "tom": "cpvton_tom",
    }
    assert status.optional == {}, "an LPIPS lin file without its trunk fills no role"
    assert pipeline_status("cpvton", [*cpvton, TRUNK]).optional == {"lpips": LIN}
    assert pipeline_status("cpvton", [*cpvton, "schp_lip20"]).roles["parsing"] == "schp_lip20"

    vitonhd = pipeline_status("vitonhd", [*cpvton, "vitonhd_seg", "vitonhd_gmm"])
    assert vitonhd.missing == {"alias": ("vitonhd_alias",)}
    assert describe_missing(vitonhd) == "vitonhd needs alias (vitonhd_alias)"
    assert best_pipeline([*cpvton, "vitonhd_seg", "vitonhd_gmm"]) == "cpvton"
    assert best_pipeline([*cpvton, "vitonhd_seg", "vitonhd_gmm", "vitonhd_alias"]) == "vitonhd"
    assert best_pipeline(["cpvton_gmm", "cpvton_tom"]) is None
    assert missing_companions(LIN, []) == (TRUNK,) and roles_of("u2netp") == [
        ("cpvton", "garment_mask"),
        ("vitonhd", "garment_mask"),
    ]
    with pytest.raises(ValueError, match="unknown pipeline 'hrviton'; known: cpvton, vitonhd"):
        pipeline_status("hrviton", [])
