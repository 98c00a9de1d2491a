"""The Dagster entry point loads in a fresh process without loading weights or building networks."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parents[1]
PRIVATE = re.compile(r"^\s*(from|import)\s+dagster\._", re.MULTILINE)


def test_definitions_load_without_weights():
    script = textwrap.dedent(
        """
        import sys
        import dagster as dg
        from mycloset_assets.definitions import defs
        from mycloset_assets.engine.models import default_pool

        dg.Definitions.validate_loadable(defs)
        keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
        assert {"checkpoint_analysis", "canonical_checkpoint", "pose_model", "tom_model", "vitonhd_result"} <= keys
        assert default_pool().loads == 0
        from mycloset_assets.checkpoints.keymap import _entry_tables
        assert _entry_tables.cache_info().currsize == 0, "no network was built"
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_nothing_imports_dagsters_private_modules():
    sources = [
        *(ROOT / "mycloset_assets").rglob("*.py"),
        *(ROOT / "tests").rglob("*.py"),
        *(ROOT / "benchmarks").rglob("*.py"),
    ]
    offenders = [str(path.relative_to(ROOT)) for path in sources if PRIVATE.search(path.read_text())]
    assert len(sources) > 50 and offenders == []
