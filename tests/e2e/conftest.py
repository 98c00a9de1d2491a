"""The real deployment for end-to-end tests: ``dagster-webserver`` and ``dagster-daemon`` on loopback.

The stack is laid out by the demo's own code (``prepare_demo``: the synthesized CP-VTON zoo, the bundled photos
in the inbox, ``dagster.yaml`` with SQLite storage in a temporary ``DAGSTER_HOME``, ``workspace.yaml``) and
shared by every test of this folder. The bundled photos are shrunk to ``PHOTO_SIZE`` in place before the stack
starts, so that every run on them is cheap. ``Stack`` talks to the webserver's GraphQL endpoint: it starts and
stops sensors, adds partitions, launches runs, waits for them and reads check executions back.

The webserver starts first; every sensor is stopped over GraphQL before the daemon starts, so that the only
runs are the ones the tests launch (a sensor test starts its sensor itself). Runs use the in-process executor:
one process per run instead of one per step, each of which would import torch again.

``TARGETS`` names what the tests materialise, once per session (``Stack.materialise_target``): steps of assets,
each with the dynamic partitions it needs (added over GraphQL first; one run per key, launched together) and
its run config. ``tryon`` analyses every checkpoint of the zoo, materialises the model assets, the person and
garment photo steps and ``warped_garment`` / ``tryon_result`` / ``restored_result`` / ``quality_report`` for the
pair of the bundled photos, with the cheap settings of ``tests/defs/test_tryon.py``; ``BROWSED`` names its
``tryon_result`` and ``quality_report``.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mycloset_assets.defs.partitions import image_partition_key, pair_key, pairs
from mycloset_assets.demo import DEMO_ENTRIES, LOCATION_NAME, PHOTOS, DemoLayout, prepare_demo

CODE = "mycloset_assets.definitions:defs"
"""The Definitions the stack serves: the project's own entry point."""
ZOO = DEMO_ENTRIES
"""Checkpoints synthesized into the stack's zoo: one per role of the CP-VTON pipeline."""
PHOTO_SIZE = (48, 64)
"""(width, height) the bundled photos are shrunk to in the stack's inbox."""
SENSORS = (
    "checkpoint_folder_sensor",
    "person_inbox_sensor",
    "garment_inbox_sensor",
    "pairs_sensor",
    "nightly_automation",
)
"""Every sensor of ``CODE``: stopped before the daemon starts."""
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
REPOSITORY = "__repository__"
ASSET_JOB = "__ASSET_JOB"
STARTUP_S = 240.0
RUN_S = 420.0
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
PAIRS = "pairs"
"""How a ``Step`` names the pairs: person x garment, not a dynamic set (nothing to add before a launch)."""

KeysOf = Callable[[DemoLayout], tuple[str, ...]]


@dataclass(frozen=True)
class Step:
    """Runs materialising ``assets`` together: one per key of ``partitions`` (of dynamic set ``partitions_def``),
    or a single unpartitioned one, with ``config`` (the ``config`` of each named op)."""

    assets: tuple[str, ...]
    partitions_def: str | None = None
    partitions: tuple[str, ...] | KeysOf = ()
    config: Mapping[str, Mapping[str, Any]] | None = None

    def run_config(self) -> dict[str, Any]:
        """The run config of its launches: the in-process executor and ``{"ops": {op: {"config": ...}}}``."""
        ops = {op: {"config": dict(config)} for op, config in (self.config or {}).items()}
        return {**IN_PROCESS, **({"ops": ops} if ops else {})}

    def partition_keys(self, layout: DemoLayout) -> tuple[str, ...]:
        """The partition keys, computed from the stack's layout when given as a function."""
        return self.partitions(layout) if callable(self.partitions) else self.partitions


@dataclass(frozen=True)
class Run:
    """One launched run of a step and how it ended."""

    step: Step
    partition: str | None
    run_id: str
    status: str


def checkpoint_keys(layout: DemoLayout) -> tuple[str, ...]:
    """The ``checkpoint_files`` keys of the zoo: each file's path under the checkpoint folder."""
    return tuple(sorted(path.relative_to(layout.zoo).as_posix() for path in layout.zoo.rglob("*") if path.is_file()))


def photo_key(layout: DemoLayout, kind: str) -> str:
    """The partition key of the bundled photo of ``kind`` in the stack's inbox."""
    return image_partition_key(layout.inbox / kind / PHOTOS[kind][0])


def bundled_pair(layout: DemoLayout) -> tuple[str, ...]:
    """The ``pairs`` key of the bundled person and garment photos (``garment|person``)."""
    return (str(pair_key(photo_key(layout, "person"), photo_key(layout, "garment"))),)


MODELS = ("pose_model", "parsing_model", "garment_mask_model", "gmm_model", "tom_model")
PERSON_STEPS = ("person_image", "pose", "human_parsing", "person_representation", "clothing_mask")
CHEAP = {
    "pose": {"pose_scales": [0.25], "max_side": 64},
    "human_parsing": {"parsing_size": [64, 64], "max_side": 64},
    "garment_mask": {"mask_size": [64, 64], "max_side": 64},
}
"""The cheapest settings of the network steps (as in ``tests/defs/test_tryon.py``)."""

TARGETS: dict[str, tuple[Step, ...]] = {
    "checkpoint_side": (
        Step(("checkpoint_analysis",), "checkpoint_files", ("u2netp/u2netp.pth",)),
        Step(("garment_mask_model",)),
    ),
    "tryon": (
        Step(("checkpoint_analysis",), "checkpoint_files", checkpoint_keys),
        Step(MODELS),
        Step(
            PERSON_STEPS,
            "person_images",
            lambda layout: (photo_key(layout, "person"),),
            {op: CHEAP[op] for op in ("pose", "human_parsing")},
        ),
        Step(
            ("garment_image", "garment_mask", "refined_garment_mask"),
            "garment_images",
            lambda layout: (photo_key(layout, "garment"),),
            {"garment_mask": CHEAP["garment_mask"]},
        ),
        Step(("warped_garment", "tryon_result", "restored_result", "quality_report"), "pairs", bundled_pair),
    ),
}
BROWSED = ("tryon", ("tryon_result", "quality_report"))
"""The target the browser test materialises, and the assets it opens."""

LOCATION_QUERY = """
query { workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message stack } } } } } }
"""
RUN_QUERY = """
query ($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }
"""
ADD_PARTITION = """
mutation ($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name, partitionKey: $key) {
    __typename ... on Error { message } } }
"""
LAUNCH = """
mutation ($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on RunConfigValidationInvalid { errors { message } }
  ... on Error { message } } }
"""
DECLARED_CHECKS = """
query ($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) {
  assetChecksOrError { __typename ... on AssetChecks { checks { name } } } } }
"""
CHECK_EXECUTIONS = """
query ($key: AssetKeyInput!, $check: String!) { assetCheckExecutions(assetKey: $key, checkName: $check, limit: 25) {
  runId status partition evaluation { success severity description metadataEntries { label } } } }
"""
SENSOR_QUERY = """
query ($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) { __typename
  ... on Sensor { sensorState { id } } } }
"""
STOP_SENSOR = """
mutation ($id: String!) { stopSensor(id: $id) { __typename
  ... on StopSensorMutationResult { instigationState { status } } ... on PythonError { message } } }
"""
START_SENSOR = """
mutation ($selector: SensorSelector!) { startSensor(sensorSelector: $selector) { __typename
  ... on Sensor { sensorState { status } } ... on PythonError { message } } }
"""
RUN_ERRORS_QUERY = """
query ($runId: ID!) { logsForRun(runId: $runId) { __typename ... on EventConnection { events { __typename
  ... on MessageEvent { message level } ... on ExecutionStepFailureEvent { error { message } } } } } }
"""


def partition_tags(partition: str | None) -> list[tuple[str, str]]:
    """The run tags of a partition as the UI sets them (a pair's dimensions too)."""
    if not partition:
        return []
    if "|" in partition:
        return list(pairs.get_tags_for_partition_key(pairs.get_partition_key_from_str(partition)).items())
    return [("dagster/partition", partition)]


class StackError(RuntimeError):
    """The webserver or daemon did not come up, or a GraphQL call failed."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def console_script(name: str) -> str:
    """The path of a console script of this interpreter's environment."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise StackError(f"{name} is not installed in {Path(sys.executable).parent}")
    return found


@dataclass
class Stack:
    """A running webserver and daemon, their logs, and the demo layout they serve."""

    layout: DemoLayout
    url: str
    processes: dict[str, subprocess.Popen[bytes]]
    logs: dict[str, Path]
    materialised: dict[str, list[Run]] = field(default_factory=dict)

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST a GraphQL operation; its ``data``, or StackError with the errors."""
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise StackError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def log_tail(self, characters: int = 4000) -> str:
        """The end of each process's log, for failure messages."""
        tails = [
            f"--- {name}:\n{path.read_text(errors='replace')[-characters:]}"
            for name, path in self.logs.items()
            if path.exists()
        ]
        return "\n".join(tails)

    def wait_for_location(self, timeout_s: float = STARTUP_S) -> None:
        """Wait until the webserver answers and the code location is loaded; StackError with its error."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise StackError(f"{name} exited with {process.returncode}\n{self.log_tail()}")
            try:
                data = self.graphql(LOCATION_QUERY)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(1.0)
                continue
            entries = data["workspaceOrError"].get("locationEntries", [])
            entry = next((item for item in entries if item["name"] == LOCATION_NAME), None)
            if entry and entry["loadStatus"] == "LOADED":
                error = entry["locationOrLoadError"]
                if error and error["__typename"] == "PythonError":
                    raise StackError(f"the code location failed to load: {error['message']}\n{error['stack']}")
                return
            time.sleep(1.0)
        raise StackError(f"the webserver did not load {LOCATION_NAME} in {timeout_s:.0f} s\n{self.log_tail()}")

    def wait_for_run(self, run_id: str, timeout_s: float = RUN_S) -> str:
        """The run's terminal status (SUCCESS, FAILURE, CANCELED); StackError when it does not end in time."""
        deadline = time.monotonic() + timeout_s
        status = "UNKNOWN"
        while time.monotonic() < deadline:
            status = self.graphql(RUN_QUERY, {"runId": run_id})["runOrError"].get("status", status)
            if status in TERMINAL:
                return status
            time.sleep(1.0)
        raise StackError(f"run {run_id} still {status} after {timeout_s:.0f} s\n{self.log_tail()}")

    def add_partition(self, partitions_def: str, key: str) -> None:
        """Add ``key`` to dynamic partition set ``partitions_def`` (already there is fine)."""
        variables = {
            "selector": {"repositoryLocationName": LOCATION_NAME, "repositoryName": REPOSITORY},
            "name": partitions_def,
            "key": key,
        }
        result = self.graphql(ADD_PARTITION, variables)["addDynamicPartition"]
        if result["__typename"] not in {"AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"}:
            raise StackError(f"adding partition {key!r} to {partitions_def}: {result}")

    def launch(
        self, assets: tuple[str, ...], partition: str | None = None, run_config: Mapping[str, Any] | None = None
    ) -> str:
        """Launch a run materialising ``assets`` (for ``partition``, with ``run_config``), as the UI's Materialize
        button does."""
        params = {
            "selector": {
                "repositoryLocationName": LOCATION_NAME,
                "repositoryName": REPOSITORY,
                "jobName": ASSET_JOB,
                "assetSelection": [{"path": [name]} for name in assets],
            },
            "executionMetadata": {"tags": [{"key": key, "value": value} for key, value in partition_tags(partition)]},
            "runConfigData": dict(run_config or {}),
        }
        result = self.graphql(LAUNCH, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise StackError(f"launching {assets}: {result}")
        return result["run"]["runId"]

    def materialise(self, step: Step) -> list[Run]:
        """Launch the runs of one step (adding its partitions first), then wait for every one of them."""
        keys: tuple[str | None, ...] = step.partition_keys(self.layout) or (None,)
        launched = []
        for key in keys:
            if step.partitions_def and step.partitions_def != PAIRS and key:
                self.add_partition(step.partitions_def, key)
            launched.append((key, self.launch(step.assets, key, step.run_config())))
        return [Run(step, key, run_id, self.wait_for_run(run_id)) for key, run_id in launched]

    def materialise_target(self, name: str) -> list[Run]:
        """The runs of every step of ``TARGETS[name]``, once per session, up to the first step with a run that
        did not succeed."""
        if name not in self.materialised:
            runs: list[Run] = []
            for step in TARGETS[name]:
                runs.extend(self.materialise(step))
                if any(run.status != "SUCCESS" for run in runs):
                    break
            self.materialised[name] = runs
        return self.materialised[name]

    def _sensor_selector(self, sensor: str) -> dict[str, str]:
        return {"repositoryLocationName": LOCATION_NAME, "repositoryName": REPOSITORY, "sensorName": sensor}

    def stop_sensor(self, sensor: str) -> None:
        """Stop a sensor (the daemon skips it from then on)."""
        found = self.graphql(SENSOR_QUERY, {"selector": self._sensor_selector(sensor)})["sensorOrError"]
        if found["__typename"] != "Sensor":
            raise StackError(f"sensor {sensor}: {found}")
        result = self.graphql(STOP_SENSOR, {"id": found["sensorState"]["id"]})["stopSensor"]
        if result["__typename"] != "StopSensorMutationResult":
            raise StackError(f"stopping {sensor}: {result}")

    def start_sensor(self, sensor: str) -> None:
        """Start a sensor: the daemon ticks it from then on."""
        result = self.graphql(START_SENSOR, {"selector": self._sensor_selector(sensor)})["startSensor"]
        if result["__typename"] != "Sensor":
            raise StackError(f"starting {sensor}: {result}")

    def check_executions(self, asset: str, run_id: str) -> dict[str, dict[str, Any] | None]:
        """Every check ``asset`` declares -> its execution in run ``run_id`` (None when it did not run there)."""
        (node,) = self.graphql(DECLARED_CHECKS, {"keys": [{"path": [asset]}]})["assetNodes"]
        declared = node["assetChecksOrError"]
        if declared["__typename"] != "AssetChecks":
            raise StackError(f"checks of {asset}: {declared}")
        executions = {}
        for check in declared["checks"]:
            variables = {"key": {"path": [asset]}, "check": check["name"]}
            found = self.graphql(CHECK_EXECUTIONS, variables)["assetCheckExecutions"]
            executions[check["name"]] = next((item for item in found if item["runId"] == run_id), None)
        return executions

    def run_errors(self, run_id: str) -> str:
        """The error messages of a run's events, for failure messages."""
        logs = self.graphql(RUN_ERRORS_QUERY, {"runId": run_id})["logsForRun"]
        lines = []
        for event in logs.get("events", []):
            if event.get("error"):
                lines.append(event["error"]["message"])
            elif event.get("level") == "ERROR":
                lines.append(event["message"])
        return "\n".join(lines) or "no error events"


def shrink_photos(inbox: Path, size: tuple[int, int] = PHOTO_SIZE) -> None:
    """Rewrite every photo of the inbox at ``size`` (RGB PNG), in place."""
    for folder in (inbox / kind for kind in PHOTOS):
        for path in folder.iterdir():
            with Image.open(path) as photo:
                small = photo.convert("RGB").resize(size, Image.Resampling.LANCZOS)
            small.save(path, format="PNG")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process group this fixture started: SIGTERM, then SIGKILL after 20 s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


@pytest.fixture(scope="session")
def dagster_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``dagster-webserver`` + ``dagster-daemon`` serving ``CODE`` from a fresh demo home, on 127.0.0.1, every
    sensor stopped."""
    layout = prepare_demo(tmp_path_factory.mktemp("stack") / "home", entries=ZOO, code=CODE)
    shrink_photos(layout.inbox)
    port = free_port()
    env = {**os.environ, **layout.environment()}
    commands = {
        "webserver": [console_script("dagster-webserver"), "-w", str(layout.workspace), "-h", "127.0.0.1"]
        + ["-p", str(port)],
        "daemon": [console_script("dagster-daemon"), "run", "-w", str(layout.workspace)],
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs = {name: layout.home / f"{name}.log" for name in commands}
    stack = Stack(layout, f"http://127.0.0.1:{port}", processes, logs)

    def start(name: str) -> None:
        with logs[name].open("wb") as log:
            processes[name] = subprocess.Popen(
                commands[name], cwd=layout.home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    try:
        start("webserver")
        stack.wait_for_location()
        for sensor in SENSORS:
            stack.stop_sensor(sensor)
        start("daemon")
        yield stack
    finally:
        for process in processes.values():
            _stop(process)
