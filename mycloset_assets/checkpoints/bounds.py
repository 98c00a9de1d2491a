"""The resource bounds of header-only analysis, in one place, and the per-file budget that enforces them.

A checkpoint's header is small next to its weights, so reading it must never cost more than a small, fixed
share of the machine whatever the file claims: a 656-byte pickle may not allocate a gigabyte, a 33 KB
deflated member may not expand to hundreds of megabytes, and no file may keep the analyzer busy for minutes.
Every reader of ``checkpoints/`` charges what it materialises to a :class:`Budget`; exceeding a bound raises
:class:`BoundExceededError`, which the analysis reports as a ``corrupt`` verdict naming the bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import CorruptCheckpointError

MIB = 1 << 20


@dataclass(frozen=True)
class AnalysisBounds:
    """Limits of one file's header-only analysis (the README's "Analysis bounds" table lists them).

    ``memory_floor + memory_per_file_byte * file size`` (at most ``memory_cap``) bytes may be materialised
    by the restricted unpickler and the JSON header parser: strings, bytes, bytearrays, containers, the
    pickle memo. ``header_bytes`` bounds a pickle or JSON header as read (decompressed), ``code_bytes`` all
    of a TorchScript archive's ``code/`` text together, ``inflated_bytes`` what CRC verification may
    decompress from compressed members. ``tensors`` bounds tensors and storages per file, ``members`` the
    entries of a zip directory, ``depth`` the nesting of tuples in a pickle, of JSON values and of
    TorchScript objects, ``seconds`` the wall time of one analysis.
    """

    memory_floor: int = 64 * MIB
    memory_per_file_byte: int = 4
    memory_cap: int = 384 * MIB
    header_bytes: int = 64 * MIB
    code_bytes: int = 64 * MIB
    inflated_bytes: int = 1024 * MIB
    tensors: int = 200_000
    members: int = 400_000
    depth: int = 64
    seconds: float = 60.0

    def memory_budget(self, file_size: int) -> int:
        """Bytes the readers may materialise for a file of ``file_size`` bytes."""
        return min(self.memory_cap, self.memory_floor + self.memory_per_file_byte * file_size)


DEFAULT_BOUNDS = AnalysisBounds()


class BoundExceededError(CorruptCheckpointError):
    """Reading a header would exceed one of the analysis bounds; ``bound`` names it."""

    def __init__(self, bound: str, limit: float, what: str) -> None:
        self.bound = bound
        self.limit = limit
        super().__init__(
            f"{what}, beyond the analysis bound {bound} = {limit:g}: a header this large or this deep is not "
            "a real checkpoint's (a damaged or hostile file); nothing more of it was read"
        )


class Budget:
    """What one file's analysis has used so far, checked against ``bounds`` at every charge."""

    def __init__(self, file_size: int, bounds: AnalysisBounds = DEFAULT_BOUNDS) -> None:
        self.bounds = bounds
        self.memory_limit = bounds.memory_budget(file_size)
        self.memory = 0
        self.tensors = 0
        self.code = 0
        self.inflated = 0
        self.deadline = time.monotonic() + bounds.seconds

    def charge_memory(self, nbytes: int, what: str) -> None:
        """Count ``nbytes`` about to be materialised by ``what``; refuse past the file's memory budget."""
        self.memory += nbytes
        if self.memory > self.memory_limit:
            raise BoundExceededError(
                "memory", self.memory_limit, f"{what} would materialise over {self.memory_limit} bytes"
            )

    def charge_tensors(self, count: int = 1) -> None:
        """Count tensors (or storages) read from the header."""
        self.tensors += count
        if self.tensors > self.bounds.tensors:
            raise BoundExceededError("tensors", self.bounds.tensors, "the header describes too many tensors")

    def charge_code(self, nbytes: int) -> None:
        """Count TorchScript code text read."""
        self.code += nbytes
        if self.code > self.bounds.code_bytes:
            raise BoundExceededError("code_bytes", self.bounds.code_bytes, "the TorchScript code/ text is too large")

    def charge_inflated(self, nbytes: int) -> None:
        """Count bytes decompressed from compressed zip members while verifying them."""
        self.inflated += nbytes
        if self.inflated > self.bounds.inflated_bytes:
            raise BoundExceededError(
                "inflated_bytes", self.bounds.inflated_bytes, "the compressed members expand too much"
            )

    def check_header_size(self, nbytes: int, what: str) -> None:
        """Refuse a header (pickle or JSON) larger than ``header_bytes`` before reading it."""
        if nbytes > self.bounds.header_bytes:
            raise BoundExceededError("header_bytes", self.bounds.header_bytes, f"{what} holds {nbytes} bytes")

    def check_depth(self, depth: int, what: str) -> None:
        """Refuse nesting deeper than ``depth``."""
        if depth > self.bounds.depth:
            raise BoundExceededError("depth", self.bounds.depth, f"{what} nests deeper than {self.bounds.depth}")

    def check_time(self) -> None:
        """Refuse to go on once the analysis has run for ``seconds``."""
        if time.monotonic() > self.deadline:
            raise BoundExceededError("seconds", self.bounds.seconds, "reading the header takes too long")
