"""Builders of hostile and broken checkpoint files (small on disk) and a measured analysis of one file.

The corpus tests build each class of input the hardening issue describes and check the verdict, the reason,
the peak memory growth and the time of its analysis; :func:`measured` runs one analysis in a forked child,
so its peak RSS is the child's own (``ru_maxrss``) and a crash or hang cannot take the test run with it.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import struct
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

PEAK_GROWTH_MIB = 512
SECONDS = 20.0


def pickle_global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def torch_zip(
    path: Path,
    data_pkl: bytes,
    *,
    root: str = "archive",
    members: list[tuple[str, bytes, int]] | None = None,
    pickle_compression: int = zipfile.ZIP_STORED,
) -> Path:
    """A torch-style zip archive: ``ROOT/data.pkl`` then ``members`` (name under ROOT, bytes, method)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo(f"{root}/data.pkl"), data_pkl, compress_type=pickle_compression)
        archive.writestr(zipfile.ZipInfo(f"{root}/version"), b"3\n")
        for name, data, method in members or []:
            archive.writestr(zipfile.ZipInfo(f"{root}/{name}"), data, compress_type=method)
    return path


def legacy_file(path: Path, obj_pickle: bytes) -> Path:
    """A legacy torch file whose fourth pickle (the object) is ``obj_pickle`` and that has no storages."""
    import pickle

    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    version = pickle.dumps(1001, protocol=2)
    info = pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2)
    path.write_bytes(magic + version + info + obj_pickle + pickle.dumps([], protocol=2))
    return path


def safetensors_file(path: Path, header: bytes | dict[str, Any], data: bytes) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def measured(run: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], float, float]:
    """``run()`` in a forked child: (its result, peak RSS growth in MiB, seconds). A child that crashes or
    runs past 3 x SECONDS fails the caller with what happened."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        status = 0
        try:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            started = time.perf_counter()
            result = run()
            seconds = time.perf_counter() - started
            growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
            payload = json.dumps({"result": result, "growth": growth, "seconds": seconds}).encode()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
            payload = json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode()
            status = 1
        with os.fdopen(write_end, "wb") as stream:
            stream.write(payload)
        os._exit(status)
    os.close(write_end)
    deadline = time.monotonic() + 3 * SECONDS
    chunks = []
    with os.fdopen(read_end, "rb") as stream:
        os.set_blocking(stream.fileno(), False)
        while time.monotonic() < deadline:
            chunk = stream.read()
            if chunk:
                chunks.append(chunk)
            finished, _ = os.waitpid(pid, os.WNOHANG)
            if finished:
                rest = stream.read()
                chunks.append(rest or b"")
                break
            time.sleep(0.01)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the analysis ran past {3 * SECONDS} s and was killed")
    data = b"".join(chunks)
    if not data:
        raise AssertionError("the analysing process died without a result (crashed)")
    report = json.loads(data)
    if "error" in report:
        raise AssertionError(f"the analysis raised {report['error']}")
    return report["result"], report["growth"], report["seconds"]
