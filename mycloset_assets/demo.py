"""The demo: a synthesized zoo, the bundled photos in the inbox, and Dagster's web UI on loopback.

``run_demo(home)`` lays out a self-contained folder and starts the embedded default deployment in it::

    HOME/zoo/<entry>/<published file>   checkpoints in their published layouts (synthesized weights)
    HOME/models/                        the model manager's store, with the zoo registered
    HOME/inbox/person/astronaut.png     the bundled photos, and inbox/pairs.csv pairing them
    HOME/inbox/garment/tshirt.png
    HOME/storage/                       where the assets' files go (PNG, JSON, NPZ, safetensors)
    HOME/dagster_home/dagster.yaml      SQLite storage under dagster_home/, runs queued, one `gpu` slot
    HOME/workspace.yaml                 the code location: mycloset_assets.definitions:defs

then runs ``dagster dev`` (webserver and daemon) with ``DAGSTER_HOME`` and the ``MYCLOSET_*`` variables
pointing there, and prints the URL. The weights are synthesized (real ones cannot be downloaded here), so the
pictures the pipeline makes are meaningless; put the real files (the registry's URLs) in ``HOME/zoo`` instead
for real results. Running it again reuses what is there and never overwrites a user's file.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from .checkpoints.manager import DuplicateModelError, ModelManager
from .checkpoints.synth import write_checkpoint
from .package_data import demo_data_folder, manifests_folder

DEMO_ENTRIES = ("openpose_body_coco18", "schp_lip20", "u2netp", "cpvton_gmm", "cpvton_tom")
"""One checkpoint for every role of the CP-VTON pipeline (U2Netp for garment masks: the smallest file)."""

DEMO_DATA = demo_data_folder()
PHOTOS = {"person": ("astronaut.png",), "garment": ("tshirt.png",)}
LOCATION_NAME = "mycloset"
CODE = "mycloset_assets.definitions:defs"
DAGSTER_YAML = """\
# Written by the MyCloset demo: Dagster's embedded default, everything under this folder.
storage:
  sqlite:
    base_dir: {storage}
concurrency:
  runs:
    max_concurrent_runs: 2
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""


class DemoError(RuntimeError):
    """The demo cannot be laid out (missing manifests or photos)."""


@dataclass(frozen=True)
class DemoLayout:
    """The folders of a demo home."""

    home: Path

    @property
    def zoo(self) -> Path:
        return self.home / "zoo"

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def inbox(self) -> Path:
        return self.home / "inbox"

    @property
    def storage(self) -> Path:
        return self.home / "storage"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"

    @property
    def workspace(self) -> Path:
        return self.home / "workspace.yaml"

    def environment(self) -> dict[str, str]:
        """The variables the Dagster processes run with: their home and the project's folders."""
        return {
            "DAGSTER_HOME": str(self.dagster_home),
            "MYCLOSET_CHECKPOINTS": str(self.zoo),
            "MYCLOSET_INBOX": str(self.inbox),
            "MYCLOSET_STORAGE": str(self.storage),
            "MYCLOSET_HOME": str(self.models),
        }


def default_manifests() -> Path:
    """The published layouts shipped with the package (``mycloset_assets/manifests``)."""
    return manifests_folder()


def write_zoo(folder: Path, entries: Sequence[str], manifests: Path) -> list[Path]:
    """Write each entry's checkpoint as ``FOLDER/<entry>/<published file>``; existing files are kept."""
    written = []
    for entry in entries:
        source = manifests / f"{entry}.json"
        if not source.is_file():
            raise DemoError(f"no manifest {source}: the installed package is incomplete; reinstall mycloset-assets")
        manifest = json.loads(source.read_text())
        target = folder / entry / manifest["published_as"]["file"]
        if not target.exists():
            partial = target.with_name(f".{target.name}.partial")
            write_checkpoint(manifest, partial)
            partial.replace(target)
        written.append(target)
    return written


def register_zoo(store: Path, paths: Sequence[Path]) -> list[str]:
    """Register every file with the model manager under its registry entry; already registered names are kept."""
    manager = ModelManager(store)
    names = []
    for path in paths:
        try:
            names.append(manager.register(path).label)
        except DuplicateModelError:
            continue
    return names


def drop_photos(inbox: Path) -> list[Path]:
    """Copy the bundled photos into the inbox and pair them in ``pairs.csv``, leaving existing files alone."""
    dropped = []
    for kind, names in PHOTOS.items():
        for name in names:
            source, target = DEMO_DATA / name, inbox / kind / name
            if not source.is_file():
                raise DemoError(f"the bundled photo {source} is missing from the package")
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                shutil.copyfile(source, target)
            dropped.append(target)
    pairs_csv = inbox / "pairs.csv"
    if not pairs_csv.exists():
        rows = [f"{person},{garment}" for person in PHOTOS["person"] for garment in PHOTOS["garment"]]
        pairs_csv.write_text("person,garment\n" + "\n".join(rows) + "\n")
    return dropped


def write_dagster_files(layout: DemoLayout, code: str = CODE) -> None:
    """``dagster_home/dagster.yaml`` (SQLite storage) and ``workspace.yaml`` loading ``code`` (``module:attribute``)."""
    module, _, attribute = code.partition(":")
    layout.dagster_home.mkdir(parents=True, exist_ok=True)
    (layout.dagster_home / "dagster.yaml").write_text(
        DAGSTER_YAML.format(storage=json.dumps(str(layout.dagster_home / "storage")))
    )
    layout.workspace.write_text(
        "load_from:\n"
        "  - python_module:\n"
        f"      module_name: {module}\n"
        f"      attribute: {attribute or 'defs'}\n"
        f"      location_name: {LOCATION_NAME}\n"
        f"      working_directory: {json.dumps(str(layout.home))}\n"
    )


def initialise_instance(dagster_home: Path) -> None:
    """Create the instance's SQLite databases now: a webserver and a daemon starting side by side on a fresh
    ``DAGSTER_HOME`` would both create them and race on the schema version."""
    with dg.DagsterInstance.from_config(str(dagster_home)):
        pass


def prepare_demo(
    home: Path,
    *,
    entries: Sequence[str] = DEMO_ENTRIES,
    manifests: Path | None = None,
    register: bool = True,
    code: str = CODE,
) -> DemoLayout:
    """Lay out everything the demo needs under ``home`` (see the module docstring); starts nothing.

    ``code`` is the ``module:attribute`` of the Definitions the workspace loads.
    """
    layout = DemoLayout(Path(home).resolve())
    layout.storage.mkdir(parents=True, exist_ok=True)
    paths = write_zoo(layout.zoo, entries, manifests or default_manifests())
    if register:
        register_zoo(layout.models, paths)
    drop_photos(layout.inbox)
    write_dagster_files(layout, code)
    initialise_instance(layout.dagster_home)
    return layout


def dagster_dev_command(layout: DemoLayout, host: str, port: int) -> list[str]:
    """``dagster dev`` (webserver + daemon) on the demo's workspace, from this interpreter."""
    return [sys.executable, "-m", "dagster", "dev", "-w", str(layout.workspace), "-h", host, "-p", str(port)]


def run_demo(
    home: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    entries: Sequence[str] = DEMO_ENTRIES,
    manifests: Path | None = None,
    register: bool = True,
    start: bool = True,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Prepare the demo under ``home`` and run ``dagster dev`` until interrupted; returns its exit status.

    ``start=False`` only prepares and prints the command that would start it.
    """
    layout = prepare_demo(home, entries=entries, manifests=manifests, register=register)
    command = dagster_dev_command(layout, host, port)
    env = {**(os.environ if environ is None else environ), **layout.environment()}
    print(f"demo home: {layout.home}")
    print(f"checkpoints (synthesized weights: the pictures will be meaningless): {layout.zoo}")
    print(f"inbox: {layout.inbox} (drop more photos into person/ and garment/)")
    if not start:
        print("start it with: " + " ".join(f"{key}={value}" for key, value in layout.environment().items()))
        print("  " + " ".join(command))
        return 0
    print("materialising the checkpoint analyses and the CP-VTON model assets ...", flush=True)
    subprocess.run(
        [sys.executable, "-c", "from mycloset_assets.demo import materialize_models; materialize_models()"],
        cwd=layout.home,
        env=env,
        check=True,
    )
    print(f"Dagster UI: http://{host}:{port}  (Ctrl-C stops it)", flush=True)
    process = subprocess.Popen(command, cwd=layout.home, env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        return process.wait()


DEMO_ROLES = ("pose", "parsing", "garment_mask", "gmm", "tom")


def materialize_models() -> None:
    """Run in a process with the demo's environment: analyse every checkpoint file, then materialise the
    CP-VTON roles' model assets, so that the photos the inbox sensors pick up find their models ready."""
    from .definitions import defs
    from .defs.checkpoints import canonical_checkpoint, checkpoint_analysis, register_checkpoint_files
    from .defs.models import MODEL_ASSETS
    from .defs.resources import ModelFactoryResource

    instance = dg.DagsterInstance.get()
    keys = sorted(ModelFactoryResource(checkpoint_folder=os.environ["MYCLOSET_CHECKPOINTS"]).files())
    register_checkpoint_files(instance, keys)
    job = defs.resolve_implicit_global_asset_job_def()
    for key in keys:
        job.execute_in_process(
            instance=instance, partition_key=key, asset_selection=[checkpoint_analysis.key, canonical_checkpoint.key]
        )
    job.execute_in_process(instance=instance, asset_selection=[MODEL_ASSETS[role].key for role in DEMO_ROLES])
