"""The Dagster entry point loads in a fresh process without loading weights or building networks."""

import subprocess
import sys
import textwrap


def test_definitions_load_without_weights():
    script = textwrap.dedent(
        """
        import sys
        import dagster as dg
        from mycloset_assets.definitions import defs
        from mycloset_assets.defs.resources import MODEL_CACHE

        dg.Definitions.validate_loadable(defs)
        keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
        assert {"checkpoint_analysis", "canonical_checkpoint", "pose_model", "tom_model"} <= keys, keys
        assert sum(MODEL_CACHE.loads.values()) == 0
        from mycloset_assets.checkpoints.keymap import _entry_tables
        assert _entry_tables.cache_info().currsize == 0, "no network was built"
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
