"""The checkpoint analysis asset on a real (ephemeral) Dagster instance."""

from __future__ import annotations

import dagster as dg

from mycloset_assets.definitions import defs
from mycloset_assets.defs.checkpoints import ZooConfig, checkpoint_analysis


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_asset_graph().get_all_asset_keys() == {dg.AssetKey("checkpoint_analysis")}


def test_materialise_reports_every_file(tmp_path, synth_file):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "model.pth").write_bytes(synth_file("u2netp").read_bytes())
    (zoo / "tom_final.pth").write_text("<html><body>error</body></html>")
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [checkpoint_analysis],
            instance=instance,
            run_config=dg.RunConfig({"checkpoint_analysis": ZooConfig(folder=str(zoo))}),
        )
        assert result.success
        materialization = result.asset_materializations_for_node("checkpoint_analysis")[0]
    metadata = materialization.metadata
    assert metadata["files"].value == 2 and metadata["identified"].value == 1
    assert metadata["verdicts"].value == {"identified": 1, "not_a_checkpoint": 1}
    rows = {row.data["path"]: row.data for row in metadata["reports"].value.records}
    assert rows["model.pth"]["entry"] == "u2netp" and rows["tom_final.pth"]["verdict"] == "not_a_checkpoint"
