"""The real deployment for end-to-end tests: ``dagster-webserver`` and ``dagster-daemon`` on loopback.

The stack is laid out by the demo's own code (``prepare_demo``: a synthesized zoo, the bundled photos in the
inbox, ``dagster.yaml`` with SQLite storage in a temporary ``DAGSTER_HOME``, ``workspace.yaml``) and shared by
every test of this folder. ``Stack`` talks to the webserver's GraphQL endpoint: it adds partitions, launches
runs, waits for them and reads check executions back.

``TARGETS`` names what the tests materialise: steps of assets, each with the dynamic partition it needs
(added over GraphQL first). Point a new entry at the try-on graph as it lands, e.g. the person and garment
photo steps then ``tryon_result`` for the pair of the bundled photos (``image_partition_key`` / ``pair_key`` of
the files in ``layout.inbox``), and ``BROWSED`` at ``tryon_result``.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mycloset_assets.demo import LOCATION_NAME, DemoLayout, prepare_demo

CODE = "mycloset_assets.definitions:defs"
"""The Definitions the stack serves: the project's own entry point."""
ZOO = ("u2netp",)
"""Checkpoints synthesized into the stack's zoo: small, so the stack starts fast."""
REPOSITORY = "__repository__"
ASSET_JOB = "__ASSET_JOB"
STARTUP_S = 240.0
RUN_S = 420.0
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

PartitionOf = Callable[[DemoLayout], str]


@dataclass(frozen=True)
class Step:
    """One run: ``assets`` materialised together, for ``partition`` of dynamic set ``partitions_def``."""

    assets: tuple[str, ...]
    partitions_def: str | None = None
    partition: str | PartitionOf | None = None

    def partition_key(self, layout: DemoLayout) -> str | None:
        """The partition key, computed from the stack's layout when given as a function."""
        return self.partition(layout) if callable(self.partition) else self.partition


TARGETS: dict[str, tuple[Step, ...]] = {
    "checkpoint_side": (
        Step(("checkpoint_analysis",), "checkpoint_files", "u2netp/u2netp.pth"),
        Step(("garment_mask_model",)),
    ),
}
BROWSED = ("checkpoint_side", "garment_mask_model")
"""The target the browser test materialises, and the asset it opens."""

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
RUN_ERRORS_QUERY = """
query ($runId: ID!) { logsForRun(runId: $runId) { __typename ... on EventConnection { events { __typename
  ... on MessageEvent { message level } ... on ExecutionStepFailureEvent { error { message } } } } } }
"""


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
        tails = [f"--- {name}:\n{path.read_text(errors='replace')[-characters:]}" for name, path in self.logs.items()]
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

    def launch(self, assets: tuple[str, ...], partition: str | None = None) -> str:
        """Launch a run materialising ``assets`` (for ``partition``), as the UI's Materialize button does."""
        params = {
            "selector": {
                "repositoryLocationName": LOCATION_NAME,
                "repositoryName": REPOSITORY,
                "jobName": ASSET_JOB,
                "assetSelection": [{"path": [name]} for name in assets],
            },
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}] if partition else []},
            "runConfigData": {},
        }
        result = self.graphql(LAUNCH, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise StackError(f"launching {assets}: {result}")
        return result["run"]["runId"]

    def materialise(self, step: Step) -> tuple[str, str]:
        """Run one step (adding its partition first); ``(run id, terminal status)``."""
        partition = step.partition_key(self.layout)
        if step.partitions_def and partition:
            self.add_partition(step.partitions_def, partition)
        run_id = self.launch(step.assets, partition)
        return run_id, self.wait_for_run(run_id)

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
    """``dagster-webserver`` + ``dagster-daemon`` serving ``CODE`` from a fresh demo home, on 127.0.0.1."""
    layout = prepare_demo(tmp_path_factory.mktemp("stack") / "home", entries=ZOO, code=CODE)
    port = free_port()
    env = {**os.environ, **layout.environment()}
    commands = {
        "webserver": [console_script("dagster-webserver"), "-w", str(layout.workspace), "-h", "127.0.0.1"]
        + ["-p", str(port)],
        "daemon": [console_script("dagster-daemon"), "run", "-w", str(layout.workspace)],
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs = {name: layout.home / f"{name}.log" for name in commands}
    try:
        for name, command in commands.items():
            with logs[name].open("wb") as log:
                processes[name] = subprocess.Popen(
                    command, cwd=layout.home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
        stack = Stack(layout, f"http://127.0.0.1:{port}", processes, logs)
        stack.wait_for_location()
        yield stack
    finally:
        for process in processes.values():
            _stop(process)
