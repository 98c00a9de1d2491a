"""Fetch MediaPipe's published ``.tflite`` models from the ``mediapipe==0.10.21`` wheel, unchanged.

The wheel is downloaded with pip (``pip download --no-deps``, nothing is installed or imported) or given
as a path; its five legacy solution models are read from the zip, checked against the sha256 the
registry records for each, and written into a folder with a NOTICE naming their source and licence.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

from .errors import CheckpointError
from .registry import get_entry

MEDIAPIPE_VERSION = "0.10.21"
MEDIAPIPE_ENTRIES = (
    "mediapipe_pose_detection",
    "mediapipe_pose_landmark_full",
    "mediapipe_selfie_segmentation",
    "mediapipe_face_detection_short_range",
    "mediapipe_face_landmark",
)
# sha256 of the wheels checked here; other platforms' wheels hold the same .tflite files, which are
# verified one by one against the registry whatever the wheel.
KNOWN_WHEELS = {
    "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl": (
        "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
    ),
}
PIP_TIMEOUT_S = 600
NOTICE = """The .tflite files in this folder are MediaPipe's legacy solution models, copied unchanged from the
mediapipe=={version} wheel ({wheel}, https://pypi.org/project/mediapipe/{version}/).
Copyright The MediaPipe Authors. Licensed under the Apache License, Version 2.0 (LICENSE.mediapipe
beside this file, from the wheel): http://www.apache.org/licenses/LICENSE-2.0
Files and sha256:
{files}
"""


class FetchError(CheckpointError):
    """The wheel cannot be downloaded, is not the expected wheel, or lacks a model."""


def mediapipe_members() -> dict[str, str]:
    """Wheel member path -> sha256, for the five models, from their registry entries."""
    members = {}
    for entry_id in MEDIAPIPE_ENTRIES:
        published = get_entry(entry_id).published
        members[str(published["wheel_member"])] = str(published["sha256"])
    return members


def download_wheel(folder: Path) -> Path:
    """``pip download --no-deps mediapipe==0.10.21`` into ``folder``; FetchError says what to do when the
    package index cannot be reached."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", f"mediapipe=={MEDIAPIPE_VERSION}", "-d",
               str(folder), "--disable-pip-version-check"]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FetchError(_unreachable(str(exc))) from exc
    wheels = sorted(folder.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    if done.returncode != 0 or not wheels:
        lines = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()]
        raise FetchError(_unreachable(lines[-1] if lines else f"pip exited with status {done.returncode}"))
    return wheels[0]


def _unreachable(detail: str) -> str:
    return (
        f"could not download mediapipe=={MEDIAPIPE_VERSION} from the package index ({detail}). On a machine that "
        f"can reach it run `pip download --no-deps mediapipe=={MEDIAPIPE_VERSION} -d WHEELS`, copy the .whl here "
        "and run `mycloset fetch mediapipe DIR --wheel WHEELS/mediapipe-...whl`"
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_members(wheel: Path, expected: Mapping[str, str]) -> tuple[dict[str, bytes], bytes | None]:
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FetchError(f"{wheel} is not a readable wheel (zip) file: {exc}") from exc
    with archive:
        names = set(archive.namelist())
        missing = [m for m in expected if m not in names]
        if missing:
            raise FetchError(f"{wheel} lacks {', '.join(missing)}: it is not the mediapipe=={MEDIAPIPE_VERSION} wheel")
        try:
            found = {m: archive.read(m) for m in expected}
            licence = next((archive.read(n) for n in sorted(names) if n.endswith(".dist-info/LICENSE")), None)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise FetchError(f"{wheel} is damaged ({exc}); download it again") from exc
    for member, data in found.items():
        digest = _sha256(data)
        if digest != expected[member]:
            raise FetchError(
                f"{wheel}: {member} has sha256 {digest}, not the published {expected[member]}; "
                f"the wheel is not mediapipe=={MEDIAPIPE_VERSION} or was altered"
            )
    return found, licence


def _write(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(temporary, path)


def fetch_mediapipe(
    directory: str | Path, wheel: str | Path | None = None, *, expected: Mapping[str, str] | None = None
) -> list[Path]:
    """Write the five MediaPipe ``.tflite`` models (bytes unchanged) and a NOTICE into ``directory``.

    ``wheel`` is a downloaded ``mediapipe-0.10.21-*.whl``; without it pip downloads the wheel. ``expected``
    (member -> sha256) defaults to the registry's. Returns the model paths in registry order. Nothing is
    written unless every model is present and verified.
    """
    expected = dict(expected or mediapipe_members())
    directory = Path(directory)
    with tempfile.TemporaryDirectory(prefix="mycloset-mediapipe-") as scratch:
        source = Path(wheel) if wheel is not None else download_wheel(Path(scratch))
        if not source.is_file():
            raise FetchError(f"{source} is not a file; give the path of a mediapipe-{MEDIAPIPE_VERSION}-*.whl")
        known = KNOWN_WHEELS.get(source.name)
        if known is not None and _sha256(source.read_bytes()) != known:
            raise FetchError(f"{source} does not have the published sha256 {known}; download it again")
        found, licence = _read_members(source, expected)
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for member, data in found.items():
            target = directory / Path(member).name
            _write(target, data)
            written.append(target)
        listing = "\n".join(f"  {Path(m).name}  {expected[m]}" for m in found)
        _write(
            directory / "NOTICE", NOTICE.format(version=MEDIAPIPE_VERSION, wheel=source.name, files=listing).encode()
        )
        if licence is not None:
            _write(directory / "LICENSE.mediapipe", licence)
    return written
