"""The demo's layout: a synthesized zoo, registered; the bundled photos in the inbox; Dagster's files."""

import dagster as dg
import yaml

from mycloset_assets.checkpoints.manager import ModelManager
from mycloset_assets.demo import DEMO_DATA, LOCATION_NAME, prepare_demo, run_demo
from mycloset_assets.vision.images import load_image


def test_prepare_demo_lays_out_everything_and_keeps_user_files(tmp_path, capsys):
    layout = prepare_demo(tmp_path / "home", entries=("u2netp",))
    assert (layout.zoo / "u2netp" / "u2netp.pth").is_file()
    assert [model.name for model in ModelManager(layout.models).active()] == ["u2netp"]
    person = layout.inbox / "person" / "astronaut.png"
    assert person.read_bytes() == (DEMO_DATA / "astronaut.png").read_bytes()
    assert load_image(person).size == (512, 512)
    assert load_image(layout.inbox / "garment" / "tshirt.png").size == (256, 192)
    assert (layout.inbox / "pairs.csv").read_text() == "person,garment\nastronaut.png,tshirt.png\n"

    workspace = yaml.safe_load(layout.workspace.read_text())["load_from"][0]["python_module"]
    assert workspace["module_name"] == "mycloset_assets.definitions" and workspace["location_name"] == LOCATION_NAME
    with dg.DagsterInstance.from_config(str(layout.dagster_home)) as instance:
        assert instance.storage_directory().startswith(str(layout.dagster_home))

    person.write_bytes(b"the user's own edit")
    assert run_demo(layout.home, entries=("u2netp",), start=False) == 0
    assert person.read_bytes() == b"the user's own edit"
    printed = capsys.readouterr().out
    assert f"DAGSTER_HOME={layout.dagster_home}" in printed and "dagster dev -w" in printed
