"""The demo's layout: a synthesized zoo, registered; the bundled photos in the inbox; Dagster's files."""

import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from mycloset_assets.checkpoints.manager import ModelManager
from mycloset_assets.checkpoints.manager_store import share_file
from mycloset_assets.cli import main
from mycloset_assets.demo import (
    DEMO_DATA,
    HARMLESS_WARNINGS,
    LOCATION_NAME,
    STOP_GRACE_S,
    prepare_demo,
    run_demo,
    run_group,
    warning_filters,
)
from mycloset_assets.vision.images import load_image

ROOT = Path(__file__).resolve().parents[1]


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


def test_models_list_finds_the_demo_zoo_at_the_printed_home_and_the_store_shares_its_files(tmp_path, capsys):
    assert run_demo(tmp_path / "home", entries=("u2netp",), start=False) == 0
    printed = capsys.readouterr().out
    home = re.search(r"mycloset models list --home (\S+)", printed).group(1)
    assert f"MYCLOSET_HOME={home}" in printed and "Dagster UI" not in printed

    assert main(["models", "list", "--home", home, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(model["name"], model["entry"], model["version"]) for model in listed] == [("u2netp", "u2netp", 1)]
    zoo_file = tmp_path / "home" / "zoo" / "u2netp" / "u2netp.pth"
    stored = ModelManager(Path(home)).store.path(listed[0]["sha256"])
    assert zoo_file.stat().st_mode & 0o777 == 0o444
    assert stored.read_bytes() == zoo_file.read_bytes()
    if share_file(zoo_file, tmp_path / "probe") == "hardlink":
        assert stored.stat().st_ino == zoo_file.stat().st_ino, "one copy of the weights, not two"


def test_warning_filters_keep_the_users_and_hide_each_harmless_warning():
    value = warning_filters("error::DeprecationWarning")
    assert value.split(",")[0] == "error::DeprecationWarning"
    assert len(value.split(",")) == 1 + len(HARMLESS_WARNINGS)
    script = (
        "import warnings\n"
        "for message in MESSAGES: warnings.warn(message + ' (and the rest)', UserWarning)\n"
        "warnings.warn('another warning', UserWarning)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", f"MESSAGES = {list(HARMLESS_WARNINGS)!r}\n{script}"],
        env={"PYTHONWARNINGS": warning_filters(), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "another warning" in done.stderr
    assert not any(message in done.stderr for message in HARMLESS_WARNINGS)


TREE = "trap '' INT TERM; sleep 300 & sleep 300 & bash -c 'sleep 300' & wait"
"""A process tree that ignores SIGINT and SIGTERM: only the group's SIGKILL ends it."""


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _group_of(pid: int) -> int | None:
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[2])
    except OSError:
        return None


def _descendants(pid: int) -> set[int]:
    children: dict[int, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except OSError:
                continue
            children.setdefault(parent, set()).add(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.add(child)
            todo.append(child)
    return found


def test_run_group_stops_the_whole_tree_on_sigterm_and_says_so(tmp_path, capsys):
    log = tmp_path / "demo.log"
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGTERM))
    seen: list[dict[int, int | None]] = []
    others = _descendants(os.getpid())  # what this test session runs already (a webserver, a daemon)
    watcher = threading.Timer(
        1.5, lambda: seen.append({pid: _group_of(pid) for pid in _descendants(os.getpid()) - others})
    )
    before = signal.getsignal(signal.SIGTERM)
    timer.start()
    watcher.start()
    started = time.monotonic()
    status, stopped = run_group(["bash", "-c", TREE], cwd=tmp_path, env=os.environ, log=log)
    took = time.monotonic() - started
    assert (status, stopped) == (128 + signal.SIGTERM, True)
    printed = capsys.readouterr().out
    assert "SIGTERM received: stopping the demo's process group" in printed
    stopped_group = re.search(r"stopped [4-9] process\(es\) of group (\d+)\n", printed)
    assert stopped_group, printed
    members = [pid for pid, group in seen[0].items() if group == int(stopped_group.group(1))]
    assert len(members) >= 4 and not any(_alive(pid) for pid in members)
    assert took < 2.0 + STOP_GRACE_S * 1.5 + 5
    assert signal.getsignal(signal.SIGTERM) is before


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


DEMO = (
    "import sys\nfrom pathlib import Path\nfrom mycloset_assets.demo import run_demo\n"
    "sys.exit(run_demo(Path(sys.argv[1]), port=int(sys.argv[2]), entries=('u2netp',), materialize=False))\n"
)


@pytest.mark.slow
def test_sigterm_to_the_demo_stops_dagster_dev_and_every_child(tmp_path):
    demo = subprocess.Popen(
        [sys.executable, "-c", DEMO, str(tmp_path / "home"), str(_free_port())],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in demo.stdout], daemon=True).start()
    printed, deadline = [], time.monotonic() + 300
    try:
        while not any(line.startswith("Dagster log:") for line in printed) and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                printed.append(lines.get(timeout=1))
        assert printed[-1].startswith("Dagster log:") and any("Dagster UI:   http" in line for line in printed)
        tree = _descendants(demo.pid)
        assert len(tree) >= 4, "dagster dev, its webserver, daemon and code server"
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=STOP_GRACE_S * 1.5 + 30) == 128 + signal.SIGTERM
    finally:
        if demo.poll() is None:
            demo.kill()
    time.sleep(0.5)
    while not lines.empty():
        printed.append(lines.get())
    assert any("SIGTERM received: stopping" in line for line in printed)
    assert [pid for pid in tree if _alive(pid)] == []
    assert "Warning" not in (tmp_path / "home" / "demo.log").read_text()
