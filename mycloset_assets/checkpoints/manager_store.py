"""The model manager's content-addressed store: files named by their sha256, written atomically, never overwritten.

A file enters the store in two steps. ``stage`` puts it into a private staging folder and hashes it: sharing the
source's blocks where ``share_file`` can (a reflink, or a hard link of a read-only file), copying it otherwise
(one read), fsyncs it and keeps an exclusive ``flock`` on it for as long as the staging lives, so a cleaner can tell
a live staging from one left by a killed process. ``commit`` hard-links the staged file to
``objects/<sha[:2]>/<sha>`` (a link never replaces an existing name) and fsyncs the folder. A process killed at
any point leaves either nothing, an unlocked staging folder, or a stored file no catalogue row names: all three
are invisible to readers and removed by ``clean_staging`` and the manager's orphan sweep.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import CheckpointError

CHUNK = 1 << 20
FICLONE = 0x40049409
"""Linux's ioctl that makes a file share another's blocks copy-on-write (Btrfs, XFS, bcachefs, OCFS2)."""
LOCK_TIMEOUT_S = 600.0
_POLL_S = 0.02
_FRESH_S = 60.0


class ManagerError(CheckpointError):
    """Base class of the model manager's errors."""


class LockTimeoutError(ManagerError):
    """Another process held the store's lock for longer than the timeout."""


class IntegrityError(ManagerError):
    """A stored file no longer has the sha256 its name or the catalogue says it has."""


def fsync_dir(folder: Path) -> None:
    """Make a rename or link inside ``folder`` durable."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def copy_hashing(source: BinaryIO, target: int) -> tuple[str, int]:
    """Copy ``source`` into the open file descriptor ``target`` in 1 MiB chunks; returns (sha256, size)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(target, view) :]
        size += len(chunk)
    os.fsync(target)
    return digest.hexdigest(), size


def share_file(source: Path, target: Path) -> str | None:
    """Create ``target`` with the bytes of ``source`` without writing them again, where the file system allows.

    A reflink (blocks shared copy-on-write: the two files stay independent) is tried first; then a hard link (one
    inode), but only for a file of this user with no write bit, since an edit in place would otherwise change the
    stored bytes (the store's read-only mode then applies to the source, which already has it). Returns
    ``"reflink"`` or ``"hardlink"``, or ``None`` (and no ``target``) when the caller must copy.
    """
    with source.open("rb") as stream, target.open("xb") as clone:
        try:
            fcntl.ioctl(clone.fileno(), FICLONE, stream.fileno())
            return "reflink"
        except OSError:
            pass
    target.unlink()
    status = source.stat()
    if status.st_mode & 0o222 or status.st_uid != os.geteuid():
        return None
    try:
        os.link(source, target)
    except OSError:
        return None
    return "hardlink"


def hash_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


_stored_digests: dict[tuple[str, int, int, int], str] = {}
_digests_lock = threading.Lock()


def stored_sha256(path: Path) -> str | None:
    """sha256 of a stored file (None when it is missing), hashed once per (path, size, mtime, inode) in a
    process: a file changed in place or replaced is hashed again."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    stamp = (str(path), status.st_size, status.st_mtime_ns, status.st_ino)
    with _digests_lock:
        known = _stored_digests.get(stamp)
    if known is None:
        known = hash_file(path)
        with _digests_lock:
            _stored_digests[stamp] = known
    return known


def atomic_write_text(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` through a temporary file in the same folder, fsync and rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        data = memoryview(text.encode())
        while data:
            data = data[os.write(handle, data) :]
        os.fsync(handle)
        os.close(handle)
        handle = -1
        os.replace(temporary, target)
        fsync_dir(target.parent)
    finally:
        if handle != -1:
            os.close(handle)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def atomic_copy(source: Path, target: Path, expected_sha256: str) -> None:
    """Copy ``source`` to ``target`` atomically, refusing (and leaving nothing) if its bytes do not hash to
    ``expected_sha256``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with source.open("rb") as stream:
            sha, _ = copy_hashing(stream, handle)
        os.close(handle)
        handle = -1
        if sha != expected_sha256:
            raise IntegrityError(
                f"{source} hashes to {sha}, not {expected_sha256}: the stored file was altered; "
                "run `mycloset models verify` and restore it from a backup"
            )
        os.replace(temporary, target)
        fsync_dir(target.parent)
    finally:
        if handle != -1:
            os.close(handle)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


@contextlib.contextmanager
def file_lock(path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if absent); the kernel releases it if the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(
                        f"another process has held {path} for {timeout_s:.0f} s; wait for it to finish "
                        "(the lock is released as soon as that process exits)"
                    ) from None
                time.sleep(_POLL_S)
        yield
    finally:
        os.close(handle)


@dataclass
class Staged:
    """A file copied into the staging area, hashed and fsynced; locked until committed or discarded."""

    path: Path
    sha256: str
    size: int
    handle: int

    def discard(self) -> None:
        """Delete the staging folder and release its lock (a no-op once committed or discarded)."""
        if self.handle == -1:
            return
        shutil.rmtree(self.path.parent, ignore_errors=True)
        os.close(self.handle)
        self.handle = -1


class ContentStore:
    """Files named by sha256 under ``root/objects``; staging under ``root/staging``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.staging = root / "staging"

    def path(self, sha256: str) -> Path:
        """Where the file with this sha256 is (or would be) stored."""
        return self.objects / sha256[:2] / sha256

    def stage(self, source: Path) -> Staged:
        """Put ``source`` into a private staging folder under its own file name (analysis reads the name): its
        blocks shared where ``share_file`` can, copied otherwise."""
        self.staging.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=self.staging))
        handle = -1
        try:
            if share_file(source, folder / source.name) is None:
                shutil.rmtree(folder)
                with source.open("rb") as stream:
                    return self.stage_stream(stream, source.name)
            handle = os.open(folder / source.name, os.O_RDONLY)
            fcntl.flock(handle, fcntl.LOCK_EX)
            return Staged(folder / source.name, hash_file(folder / source.name), os.fstat(handle).st_size, handle)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            if handle != -1:
                os.close(handle)
            raise

    def stage_stream(self, stream: BinaryIO, name: str) -> Staged:
        """Copy a readable binary stream into a private staging folder as ``name``, hashing it on the way."""
        self.staging.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=self.staging))
        handle = -1
        try:
            handle = os.open(folder / name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            fcntl.flock(handle, fcntl.LOCK_EX)
            sha, size = copy_hashing(stream, handle)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            if handle != -1:
                os.close(handle)
            raise
        return Staged(folder / name, sha, size, handle)

    def commit(self, staged: Staged) -> Path:
        """Give a staged file its content address and discard the staging. A file already at that address is
        kept when its bytes hash to the address, and replaced by the staged (good) bytes when they do not."""
        target = self.path(staged.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(staged.path, 0o444)
        try:
            os.link(staged.path, target)
        except FileExistsError:
            if stored_sha256(target) != staged.sha256:
                replacement = target.with_name(f".{target.name}.{os.getpid()}.tmp")
                with contextlib.suppress(FileNotFoundError):
                    replacement.unlink()
                os.link(staged.path, replacement)
                os.replace(replacement, target)
                fsync_dir(target.parent)
        else:
            fsync_dir(target.parent)
        staged.discard()
        return target

    def delete(self, sha256: str) -> None:
        """Remove a stored file (callers check that nothing names it)."""
        path = self.path(sha256)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    def shas(self) -> set[str]:
        """The sha256 of every stored file."""
        if not self.objects.is_dir():
            return set()
        return {path.name for path in self.objects.glob("??/*") if path.is_file() and len(path.name) == 64}

    def stale_staging(self) -> list[Path]:
        """Staging folders whose writer is gone (no process holds their file's lock)."""
        if not self.staging.is_dir():
            return []
        return [folder for folder in sorted(self.staging.iterdir()) if not _in_use(folder)]

    def clean_staging(self) -> list[Path]:
        """Remove the stale staging folders; returns what was removed."""
        stale = self.stale_staging()
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)
        return stale


def _in_use(folder: Path) -> bool:
    files = list(folder.iterdir()) if folder.is_dir() else []
    if not files:
        return folder.exists() and time.time() - folder.stat().st_mtime < _FRESH_S
    for path in files:
        try:
            handle = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return True
            raise
        finally:
            os.close(handle)
    return False
