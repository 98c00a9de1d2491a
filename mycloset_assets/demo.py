"""The demo: a synthesized zoo, the bundled photos in the inbox, and Dagster's web UI on loopback.

``run_demo(home)`` lays out a self-contained folder and starts the embedded default deployment in it::

    HOME/zoo/<entry>/<published file>   checkpoints in their published layouts (synthesized weights)
    HOME/zoo/mediapipe/*.tflite         MediaPipe's five real models, when the package index answers
    HOME/models/                        the model manager's store, with the zoo registered
    HOME/inbox/person/astronaut.png     the bundled photos, and inbox/pairs.csv pairing them
    HOME/inbox/garment/tshirt.png
    HOME/storage/                       where the assets' files go (PNG, JSON, NPZ, safetensors)
    HOME/dagster_home/dagster.yaml      SQLite storage under dagster_home/, runs queued, one `gpu` slot
    HOME/workspace.yaml                 the code location: mycloset_assets.definitions:defs

then runs ``dagster dev`` (webserver and daemon) with ``DAGSTER_HOME`` and the ``MYCLOSET_*`` variables
pointing there, in its own process group. Dagster's logs (INFO, known harmless warnings filtered, each with its
reason in ``HARMLESS_WARNINGS``) go to ``HOME/demo.log``; the console gets the URL and the folders last, once the
UI answers. Ctrl-C or SIGTERM stops the whole process group and says so. The zoo's files are read-only, so the
model manager's store hard-links them (one copy of the weights); canonical safetensors copies are not made here
(the checkpoint folder sensor makes them). The weights are synthesized (real ones cannot be downloaded here), so the
pictures the try-on networks make are meaningless; put the real files (the registry's URLs) in ``HOME/zoo``
instead for real results. Real weights that ship inside a package are fetched (``mycloset demo`` asks for them:
``fetch_real_models``): MediaPipe's BlazePose, selfie segmentation and face detection from the mediapipe wheel, so
the pose and the person mask the UI shows are real; the synthesized OpenPose is then left out so that BlazePose
fills the pose role. When the index cannot be reached the demo says so and runs on synthesized weights alone.
Running it again reuses what is there and never overwrites a user's file.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import dagster as dg

from .checkpoints.fetch import FetchError, fetch_mediapipe, mediapipe_members
from .checkpoints.manager import DuplicateModelError, ModelManager
from .checkpoints.synth import write_checkpoint
from .package_data import demo_data_folder, manifests_folder

DEMO_ENTRIES = ("openpose_body_coco18", "schp_lip20", "u2netp", "cpvton_gmm", "cpvton_tom")
"""One checkpoint for every role of the CP-VTON pipeline (U2Netp for garment masks: the smallest file)."""

REPLACED_BY_REAL = ("openpose_body_coco18",)
"""Synthesized entries the demo leaves out when the real MediaPipe models are there (BlazePose fills the pose)."""
MEDIAPIPE_FOLDER = "mediapipe"
REAL_ROLES = ("blazepose", "person_mask")
"""Model slots the demo materialises beside the CP-VTON ones when the MediaPipe models are there."""

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


HARMLESS_WARNINGS = {
    "Parameter `backfill_policy` of function `asset` is currently in beta": "the per-image assets ask for "
    "single-run backfills on purpose (each network loads once per run); Dagster flags the parameter as beta",
    "Function `dev_command` is superseded": "the demo runs `dagster dev`, which works; Dagster points to its newer "
    "`dg` command line, which this project does not install",
}
"""Start of each warning message the demo's processes hide, and why it is harmless."""
LOG_NAME = "demo.log"
STOP_GRACE_S = 15.0
"""How long the process group gets after SIGINT (as Ctrl-C in a terminal sends it), then SIGTERM, before SIGKILL."""
UI_WAIT_S = 300.0


class DemoError(RuntimeError):
    """The demo cannot be laid out (missing manifests or photos)."""


class DemoStopped(Exception):
    """The demo received SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


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

    @property
    def log(self) -> Path:
        return self.home / LOG_NAME

    def environment(self) -> dict[str, str]:
        """The variables the Dagster processes run with: their home and the project's folders."""
        return {
            "DAGSTER_HOME": str(self.dagster_home),
            "MYCLOSET_CHECKPOINTS": str(self.zoo),
            "MYCLOSET_INBOX": str(self.inbox),
            "MYCLOSET_STORAGE": str(self.storage),
            "MYCLOSET_HOME": str(self.models),
        }

    def summary(self, url: str | None) -> str:
        """The closing lines of the console: the UI, the folders, the model store's command and how to add photos."""
        lines = [f"Dagster UI:   {url}  (Ctrl-C stops the demo and every process it started)"] if url else []
        weights = "synthesized weights: the pictures are meaningless; put real files here"
        if (self.zoo / MEDIAPIPE_FOLDER).is_dir():
            weights = f"real MediaPipe pose, person mask and face in {MEDIAPIPE_FOLDER}/; the try-on's are synthesized"
        lines += [
            f"checkpoints:  {self.zoo}  ({weights})",
            f"inbox:        {self.inbox}  (add photos to person/ and garment/, pairs to pairs.csv)",
            f"outputs:      {self.storage}  (PNG, JSON, NPZ and safetensors files of the assets)",
            f"model store:  {self.models}  (see it with: mycloset models list --home {self.models}",
            f"              or export MYCLOSET_HOME={self.models}; the default store is ~/.mycloset)",
            f"Dagster log:  {self.log}",
        ]
        return "\n".join(lines)


def default_manifests() -> Path:
    """The published layouts shipped with the package (``mycloset_assets/manifests``)."""
    return manifests_folder()


def write_zoo(folder: Path, entries: Sequence[str], manifests: Path) -> list[Path]:
    """Write each entry's checkpoint as ``FOLDER/<entry>/<published file>``, read-only (so that the model manager
    shares its blocks instead of copying it); existing files are kept."""
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
            partial.chmod(0o444)
            partial.replace(target)
        written.append(target)
    return written


def fetch_real_models(zoo: Path, wheel: Path | None = None) -> tuple[list[Path], str]:
    """MediaPipe's five real models in ``ZOO/mediapipe`` (kept when already there; else fetched from ``wheel`` or
    the package index) and one line saying what happened; no files, and the reason, when the index cannot be
    reached."""
    target = zoo / MEDIAPIPE_FOLDER
    present = [target / Path(member).name for member in mediapipe_members()]
    if all(path.is_file() for path in present):
        return present, f"real MediaPipe models: {target} (already there)"
    try:
        paths = fetch_mediapipe(target, wheel)
    except FetchError as exc:
        return [], f"real MediaPipe models not fetched, the demo runs on synthesized weights only: {exc}"
    return paths, f"real MediaPipe models (BlazePose pose, selfie person mask, face detection) fetched into {target}"


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
    """``dagster dev`` (webserver + daemon) on the demo's workspace, from this interpreter, logging at INFO."""
    return [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(layout.workspace),
        "-h",
        host,
        "-p",
        str(port),
        "--log-level",
        "info",
    ]


def warning_filters(existing: str | None = None) -> str:
    """``PYTHONWARNINGS`` hiding ``HARMLESS_WARNINGS`` in every Python process of the demo, after ``existing``."""
    filters = [f"ignore:{message}:Warning" for message in HARMLESS_WARNINGS]
    return ",".join([existing, *filters] if existing else filters)


def group_members(pgid: int) -> list[int]:
    """The live (non-zombie) processes of process group ``pgid``, read from ``/proc``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def stop_group(process: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> int:
    """Stop ``process`` and everything in its process group: SIGINT (what Ctrl-C in a terminal sends), SIGTERM,
    then SIGKILL to the group, each after waiting up to ``grace_s / 2`` for the group to empty. Returns how many
    processes were in it."""
    pgid = process.pid
    count = len(group_members(pgid))
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signum)
        deadline = time.monotonic() + grace_s / 2
        while group_members(pgid) and time.monotonic() < deadline:
            process.poll()
            time.sleep(0.1)
        if not group_members(pgid):
            break
    process.wait()
    return count


def _stop(signum: int, frame: FrameType | None) -> None:
    raise DemoStopped(signum)


def run_group(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    ready: str | None = None,
    summary: str = "",
) -> tuple[int, bool]:
    """Run ``command`` in a process group of its own, its output appended to ``log``, until it exits or the demo
    gets SIGINT/SIGTERM (then the whole group is stopped, at most ``1.5 * STOP_GRACE_S`` with further signals
    ignored, and that is said). ``summary`` is printed once the URL
    ``ready`` answers. Returns (exit status, whether it was stopped by a signal)."""
    handlers = {signum: signal.signal(signum, _stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    process = None
    try:
        with log.open("ab") as output:
            process = subprocess.Popen(
                list(command), cwd=cwd, env=dict(env), stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
            if ready is not None and answers(ready, process):
                print(summary, flush=True)
            return process.wait(), False
    except DemoStopped as stopped:
        for signum in handlers:
            signal.signal(signum, signal.SIG_IGN)
        name = stopped.args[0]
        if process is None:
            return 128 + stopped.signum, True
        print(f"\n{name} received: stopping the demo's process group {process.pid} ...", flush=True)
        count = stop_group(process)
        left = group_members(process.pid)
        print(
            f"stopped {count} process(es) of group {process.pid}" + (f"; still alive: {left}" if left else ""),
            flush=True,
        )
        return 128 + stopped.signum, True
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def answers(url: str, process: subprocess.Popen, timeout_s: float = UI_WAIT_S) -> bool:
    """Wait until ``url`` answers (True), ``process`` exits or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    return False


def run_demo(
    home: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    entries: Sequence[str] = DEMO_ENTRIES,
    manifests: Path | None = None,
    register: bool = True,
    start: bool = True,
    materialize: bool = True,
    environ: Mapping[str, str] | None = None,
    mediapipe: bool = False,
    mediapipe_wheel: Path | None = None,
) -> int:
    """Prepare the demo under ``home`` and run ``dagster dev`` until it exits or is stopped; returns its exit status
    (128 + the signal number when stopped by SIGINT/SIGTERM).

    ``start=False`` only prepares and prints the command that would start it; ``materialize=False`` skips the
    analyses and model assets made before the UI starts. ``mediapipe=True`` fetches the real MediaPipe models
    first (from ``mediapipe_wheel`` when given, else the package index; see :func:`fetch_real_models`).
    """
    if mediapipe:
        real, said = fetch_real_models(Path(home).resolve() / "zoo", mediapipe_wheel)
        print(said, flush=True)
        entries = tuple(entry for entry in entries if not real or entry not in REPLACED_BY_REAL)
    layout = prepare_demo(home, entries=entries, manifests=manifests, register=register)
    command = dagster_dev_command(layout, host, port)
    base = os.environ if environ is None else environ
    env = {**base, **layout.environment(), "PYTHONWARNINGS": warning_filters(base.get("PYTHONWARNINGS"))}
    if not start:
        print("start it with: " + " ".join(f"{key}={value}" for key, value in layout.environment().items()))
        print("  " + " ".join(command))
        print(layout.summary(None))
        return 0
    print(f"demo home: {layout.home}; Dagster's log: {layout.log}", flush=True)
    if materialize:
        print("analysing the checkpoints and loading the CP-VTON model assets ...", flush=True)
        code = "from mycloset_assets.demo import materialize_models; materialize_models()"
        status, stopped = run_group([sys.executable, "-c", code], cwd=layout.home, env=env, log=layout.log)
        if stopped:
            return status
        if status != 0:
            print(f"materialising the model assets failed (exit status {status}); see {layout.log}", file=sys.stderr)
            return status
    url = f"http://{host}:{port}"
    print(f"starting dagster dev (webserver and daemon) at {url} ...", flush=True)
    status, stopped = run_group(
        command, cwd=layout.home, env=env, log=layout.log, ready=f"{url}/server_info", summary=layout.summary(url)
    )
    if not stopped:
        print(f"dagster dev exited with status {status}; see {layout.log}", file=sys.stderr)
    return status


DEMO_ROLES = ("pose", "parsing", "garment_mask", "gmm", "tom")
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
"""Runs of ``materialize_models`` log at INFO (Dagster's console logger defaults to DEBUG)."""


def materialize_models() -> None:
    """Run in a process with the demo's environment: analyse every checkpoint file, then materialise the
    CP-VTON roles' model assets, so that the photos the inbox sensors pick up find their models ready."""
    from .definitions import defs
    from .defs.checkpoints import checkpoint_analysis, register_checkpoint_files
    from .defs.models import MODEL_ASSETS
    from .defs.resources import ModelFactoryResource

    instance = dg.DagsterInstance.get()
    keys = sorted(ModelFactoryResource(checkpoint_folder=os.environ["MYCLOSET_CHECKPOINTS"]).files())
    register_checkpoint_files(instance, keys)
    job = defs.resolve_implicit_global_asset_job_def()
    for key in keys:
        job.execute_in_process(
            instance=instance, partition_key=key, asset_selection=[checkpoint_analysis.key], run_config=QUIET_RUN_CONFIG
        )
    real = REAL_ROLES if (Path(os.environ["MYCLOSET_CHECKPOINTS"]) / MEDIAPIPE_FOLDER).is_dir() else ()
    job.execute_in_process(
        instance=instance,
        asset_selection=[MODEL_ASSETS[role].key for role in (*DEMO_ROLES, *real)],
        run_config=QUIET_RUN_CONFIG,
    )
