"""The model pool's memory budget (LRU releases, counts, wrappers), eager loading, the load policy through
``ModelSet.from_folder`` and hidden files, on synthesized checkpoints in their published layouts.

Three U^2-Net-p files with different seeds are three different networks of the same size (4.5 MB each); the
CP-VTON GMM (76 MB) is the network larger than a budget alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mycloset_assets.checkpoints import LoadRefusedError
from mycloset_assets.engine.models import checkpoint_files, is_hidden, model_bytes
from mycloset_assets.models.u2net import U2NETP
from mycloset_assets.pipeline import Checkpoint, ModelPool, ModelSet, configure_default_pool, default_pool

F32 = torch.float32
NO_COMPANIONS = ModelSet("no companions", {})


@pytest.fixture(scope="module")
def u2netps(synth_file) -> list[Checkpoint]:
    """Three different U^2-Net-p networks (seeds 0, 1, 2)."""
    return [Checkpoint("u2netp", path, str(path)) for path in (synth_file("u2netp", seed) for seed in range(3))]


@pytest.fixture(scope="module")
def gmm(synth_file) -> Checkpoint:
    path = synth_file("cpvton_gmm")
    return Checkpoint("cpvton_gmm", path, str(path))


@pytest.fixture(scope="module")
def size(u2netps) -> int:
    """Bytes of one U^2-Net-p: every tensor of its state dict (no tied weights), counted independently."""
    module = ModelPool().load(u2netps[0], "cpu", F32, NO_COMPANIONS).module
    return sum(tensor.numel() * tensor.element_size() for tensor in module.state_dict().values())


def load(pool: ModelPool, checkpoint: Checkpoint):
    return pool.load(checkpoint, "cpu", F32, NO_COMPANIONS)


def paths(pool: ModelPool) -> list[Path]:
    """The files of the loaded networks, least recently used first."""
    return [loaded.path for loaded in pool.loaded()]


def test_a_budget_smaller_than_two_networks_keeps_one_and_reloads_on_use(u2netps, size):
    assert size == 4_548_404
    first, second, _ = u2netps
    pool = ModelPool(memory_budget=size * 3 // 2)
    loaded = load(pool, first)
    assert model_bytes(loaded) == size and pool.resident_bytes() == pool.resident_bytes("cpu") == size
    assert load(pool, first) is loaded and (pool.loads, pool.releases) == (1, 0)
    load(pool, second)
    assert (pool.loads, pool.releases, len(pool)) == (2, 1, 1)
    assert paths(pool) == [second.path] and pool.resident_bytes() == size <= pool.memory_budget
    again = load(pool, first)
    assert again is not loaded and (pool.loads, pool.releases) == (3, 2) and paths(pool) == [first.path]
    assert pool.figures() == {"loads": 3, "releases": 2, "budget_bytes": size * 3 // 2, "peak_resident_bytes": size}


def test_the_least_recently_used_network_is_released_first(u2netps, size):
    first, second, third = u2netps
    pool = ModelPool(memory_budget=size * 5 // 2)
    load(pool, first)
    load(pool, second)
    load(pool, first)  # first is now the most recently used
    load(pool, third)
    assert paths(pool) == [first.path, third.path] and (pool.loads, pool.releases) == (3, 1)
    pool.wrapper(
        first, "cpu", F32, NO_COMPANIONS, lambda loaded: loaded.path
    )  # a wrapper's use counts as the network's
    load(pool, second)
    assert paths(pool) == [first.path, second.path] and (pool.loads, pool.releases) == (4, 2)
    assert pool.resident_bytes() == 2 * size == pool.peak_resident_bytes


def test_no_budget_keeps_every_network(u2netps, gmm, size):
    pool = ModelPool()
    for checkpoint in [*u2netps, gmm, *u2netps]:
        load(pool, checkpoint)
    assert pool.memory_budget is None and (pool.loads, pool.releases, len(pool)) == (4, 0, 4)
    assert pool.resident_bytes() == 3 * size + 76_261_944 == pool.peak_resident_bytes


def test_a_network_larger_than_the_budget_is_loaded_alone(u2netps, gmm, size):
    pool = ModelPool(memory_budget=3 * size)
    load(pool, u2netps[0])
    load(pool, u2netps[1])
    load(pool, gmm)
    assert paths(pool) == [gmm.path] and pool.resident_bytes() == 76_261_944 > pool.memory_budget
    assert (pool.loads, pool.releases) == (3, 2)
    load(pool, u2netps[2])
    assert paths(pool) == [u2netps[2].path] and (pool.loads, pool.releases) == (4, 3)


def test_wrappers_are_dropped_with_their_network(u2netps, size):
    made: list[object] = []

    def factory(loaded, scale):
        made.append((loaded.path, scale))
        return object()

    pool = ModelPool(memory_budget=size)
    first = pool.wrapper(u2netps[0], "cpu", F32, NO_COMPANIONS, factory, scale=2)
    assert pool.wrapper(u2netps[0], "cpu", F32, NO_COMPANIONS, factory, scale=2) is first
    assert pool.wrapper(u2netps[0], "cpu", F32, NO_COMPANIONS, factory, scale=3) is not first
    load(pool, u2netps[1])  # releases the first network and both its wrappers
    again = pool.wrapper(u2netps[0], "cpu", F32, NO_COMPANIONS, factory, scale=2)
    assert again is not first and (pool.loads, pool.releases) == (3, 2)
    assert made == [(u2netps[0].path, 2), (u2netps[0].path, 3), (u2netps[0].path, 2)]


def test_preload_loads_now_and_a_smaller_budget_releases_at_once(u2netps, size):
    pool = ModelPool()
    pool.preload(u2netps, "cpu", F32, NO_COMPANIONS)
    assert (pool.loads, len(pool)) == (3, 3)
    load(pool, u2netps[0])
    pool.set_memory_budget(size)
    assert paths(pool) == [u2netps[0].path] and (pool.loads, pool.releases) == (3, 2)
    bounded = ModelPool(memory_budget=size)
    bounded.preload(u2netps, "cpu", F32, NO_COMPANIONS)
    assert paths(bounded) == [u2netps[2].path] and (bounded.loads, bounded.releases) == (3, 2)


def test_budget_values_are_checked_and_the_default_pool_is_configurable():
    with pytest.raises(ValueError, match=">= 0 bytes"):
        ModelPool(memory_budget=-1)
    with pytest.raises(TypeError, match="number of bytes"):
        ModelPool(memory_budget=1.5)  # type: ignore[arg-type]
    try:
        assert configure_default_pool(123) is default_pool() and default_pool().memory_budget == 123
    finally:
        configure_default_pool(None)
    assert default_pool().memory_budget is None


# policy and hidden files ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_class_head(tmp_path_factory) -> Path:
    """A U^2-Net-p with a 2-class head: partial, only the head's tensors differ."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("head") / "cloth_2class.pth"
    torch.save(U2NETP(3, 2).state_dict(), path)
    return path


def test_a_partial_head_file_fills_its_entry_only_under_reinit_head(tmp_path, two_class_head, synth_file):
    (tmp_path / "mask.pth").symlink_to(two_class_head)
    refused = ModelSet.from_folder(tmp_path)
    assert refused.checkpoints == {} and list(refused.skipped) == [str(tmp_path / "mask.pth")]
    assert refused.skipped[str(tmp_path / "mask.pth")].startswith("partial: U^2-Net salient-object")
    models = ModelSet.from_folder(tmp_path, policy="reinit_head")
    checkpoint = models.checkpoints["u2netp"]
    assert (checkpoint.shown, checkpoint.policy, models.skipped) == (str(tmp_path / "mask.pth"), "reinit_head", {})
    loaded = ModelPool().load(checkpoint, "cpu", F32, models)
    assert sorted(loaded.reinitialised) == sorted([f"side{i}" for i in range(1, 7)] + ["outconv"])
    assert loaded.module.state_dict()["outconv.weight"].shape[0] == 1
    with pytest.raises(LoadRefusedError, match="reinit_head"):
        ModelPool().load(Checkpoint("u2netp", two_class_head, "head"), "cpu", F32, models)
    # an identified file of the entry wins over the partial one, whatever their order
    (tmp_path / "z.pth").symlink_to(synth_file("u2netp"))
    both = ModelSet.from_folder(tmp_path, policy="reinit_head")
    assert (both.checkpoints["u2netp"].shown, both.checkpoints["u2netp"].policy) == (str(tmp_path / "z.pth"), "refuse")
    assert both.skipped == {
        str(tmp_path / "mask.pth"): f"partial: another file of u2netp is used ({tmp_path / 'z.pth'})"
    }
    with pytest.raises(ValueError, match="policy must be one of"):
        ModelSet.from_folder(tmp_path, policy="fill_random")


def test_the_pool_key_includes_the_policy(u2netps):
    pool = ModelPool()
    strict = load(pool, u2netps[0])
    lenient = load(pool, Checkpoint("u2netp", u2netps[0].path, "same file", policy="reinit_head"))
    assert lenient is not strict and pool.loads == 2 and lenient.reinitialised == []


def test_hidden_files_are_skipped(tmp_path, synth_file):
    source = synth_file("u2netp").read_bytes()
    for relative in (".cache/u2netp.pth", ".u2netp.pth.part", "sub/.tmp-u2netp.pth", "models/u2netp.pth"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(source)
    (tmp_path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    assert checkpoint_files(tmp_path) == {"models/u2netp.pth": tmp_path / "models" / "u2netp.pth"}
    models = ModelSet.from_folder(tmp_path)
    assert models.checkpoints["u2netp"].shown == str(tmp_path / "models" / "u2netp.pth") and models.skipped == {}
    assert is_hidden(".part") and is_hidden(Path("a/.b/c.pth")) and not is_hidden("a/b.c.pth")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoint_files(tmp_path / "absent")
    with pytest.raises(NotADirectoryError):
        ModelSet.from_folder(tmp_path / "models" / "u2netp.pth")
