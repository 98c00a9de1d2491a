"""Where a run's checkpoints come from: the model manager's active versions, each checked before use."""

from mycloset_assets.checkpoints.manager import ModelManager
from mycloset_assets.engine.models import ModelSet


def test_a_damaged_stored_file_is_skipped_with_its_real_sha256(tmp_path, synth_file):
    manager = ModelManager(tmp_path / "store")
    model = manager.register(synth_file("u2netp"))
    assert set(ModelSet.from_manager(manager).checkpoints) == {"u2netp"}
    stored = model.path
    stored.chmod(0o644)
    data = bytearray(stored.read_bytes())
    data[-100] ^= 0xFF
    stored.write_bytes(bytes(data))
    models = ModelSet.from_manager(ModelManager(tmp_path / "store"))
    assert models.checkpoints == {}
    (reason,) = models.skipped.values()
    assert reason.startswith("damaged: ") and "it was damaged" in reason and model.sha256 in reason
