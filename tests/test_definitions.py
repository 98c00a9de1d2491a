"""The Dagster entry point loads without loading weights."""

import dagster as dg


def test_definitions_load_without_weights():
    from mycloset_assets.definitions import defs
    from mycloset_assets.defs.resources import MODEL_CACHE

    dg.Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"checkpoint_analysis", "canonical_checkpoint", "pose_model", "tom_model"} <= keys
    assert sum(MODEL_CACHE.loads.values()) == 0
