"""The per-image partition sets, the pairs between them, their keys, and the inbox folder whose files they name.

A photo's partition key is its sanitised file stem plus the first 12 hex digits of its sha256
(``astronaut-88431cd9653c``): readable in the UI, stable for the same bytes under the same name, and
different for different bytes. Assets find the file of a partition through ``InboxResource.image_path``.

The inbox is a local folder by default, or any ``fsspec`` URL (``s3://bucket/inbox``, ``gs://...``,
``memory://...``, with that filesystem's package installed): every path here is a ``UPath``, and a photo is
hashed and decoded from one open file (:func:`read_photo`), never copied to a local file first.

A try-on pair is a partition of ``pairs``, Dagster's ``MultiPartitionsDefinition`` of the person and garment
photos: ``MultiPartitionKey({"person": ..., "garment": ...})`` (its string is ``garment|person``). Pair assets
depend on the per-photo assets through ``MultiToSingleDimensionPartitionMapping``, so Dagster's own lineage and
staleness of a pair follow exactly its two photos: a new photo marks no other pair stale. The trade-off: the
partition set is every person x garment combination, and only the pairs someone asked for (``pairs.csv``, the
pairs sensor) are materialised; the others stay "missing" in the UI, and nothing automatic fills them.
"""

import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import dagster as dg
from upath import UPath

from ..checkpoints.convert import file_sha256, stream_sha256
from ..vision.images import LoadedImage, load_image_file

person_images = dg.DynamicPartitionsDefinition(name="person_images")
garment_images = dg.DynamicPartitionsDefinition(name="garment_images")
PERSON = "person"
GARMENT = "garment"
pairs = dg.MultiPartitionsDefinition({PERSON: person_images, GARMENT: garment_images})
# The mapping is public API marked beta in Dagster 1.13; it is the mechanism Dagster documents for a
# multi-partitioned asset that depends on one dimension's partitions.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    PERSON_OF_PAIR = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=PERSON)
    GARMENT_OF_PAIR = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=GARMENT)

ImageKind = Literal["person", "garment"]
IMAGE_PARTITIONS: dict[str, dg.DynamicPartitionsDefinition] = {"person": person_images, "garment": garment_images}
PAIR_SEPARATOR = "|"
SHORT_HASH = 12
_STEM_LENGTH = 48
_UNSAFE = re.compile(r"[^a-z0-9_]+")


class InboxImageNotFoundError(LookupError):
    """No file in the inbox folder has the name and content a partition key names."""


def sanitise_stem(stem: str) -> str:
    """Lower-case ASCII letters, digits and ``_``, runs of anything else as one ``-``; ``image`` when empty."""
    slug = _UNSAFE.sub("-", stem.lower()).strip("-")[:_STEM_LENGTH].strip("-")
    return slug or "image"


def read_photo(path: UPath) -> tuple[str, LoadedImage]:
    """A photo's sha256 and its decoded pixels (``load_image`` rules and errors), from one open file."""
    with path.open("rb") as stream:
        sha256 = stream_sha256(stream)
        stream.seek(0)
        return sha256, load_image_file(stream, str(path))


def image_partition_key(path: str | os.PathLike[str] | UPath, sha256: str | None = None) -> str:
    """The partition key of the photo at ``path`` (``sha256`` saves hashing it again when known)."""
    digest = sha256 or file_sha256(path)
    return f"{sanitise_stem(UPath(path).stem)}-{digest[:SHORT_HASH]}"


def short_hash(partition_key: str) -> str:
    """The hash part of an image partition key."""
    return partition_key.rsplit("-", 1)[-1]


def pair_key(person_key: str, garment_key: str) -> dg.MultiPartitionKey:
    """The ``pairs`` partition key of a person photo and a garment photo."""
    for key in (person_key, garment_key):
        if not key or PAIR_SEPARATOR in key:
            raise ValueError(f"an image partition key must be non-empty and free of {PAIR_SEPARATOR!r}: {key!r}")
    return dg.MultiPartitionKey({PERSON: person_key, GARMENT: garment_key})


def split_pair_key(key: str) -> tuple[str, str]:
    """``(person_key, garment_key)`` of a ``pairs`` partition key (a ``MultiPartitionKey`` or its string)."""
    if not isinstance(key, dg.MultiPartitionKey):
        parts = key.split(PAIR_SEPARATOR)
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"a pair key is 'garment_key{PAIR_SEPARATOR}person_key', got {key!r}")
        key = pairs.get_partition_key_from_str(key)
    dimensions = key.keys_by_dimension
    return dimensions[PERSON], dimensions[GARMENT]


def inbox_files(folder: UPath) -> Iterator[UPath]:
    """The user's files in an inbox folder, by name: regular files, not hidden (``.`` names are partial copies).

    The folder is listed afresh each time: fsspec's object-store filesystems (s3fs, gcsfs) keep a listing per
    process, which would hide the files other machines drop later from a long-lived sensor process.
    """
    if not isinstance(folder, Path):
        folder.fs.invalidate_cache(folder.path)
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            yield path


class InboxResource(dg.ConfigurableResource):
    """The inbox the sensors watch: ``ROOT/person/``, ``ROOT/garment/`` and ``ROOT/pairs.csv``.

    ``root`` is a local folder or an fsspec URL (``s3://bucket/inbox`` with ``s3fs`` installed).

    ``max_files_per_tick`` caps the files a sensor tick hashes and decodes (and the pairs it adds);
    ``pair_all_garments`` pairs every person with every garment instead of the pairs listed in ``pairs.csv``.
    """

    root: str = "inbox"
    max_files_per_tick: int = 16
    pair_all_garments: bool = False

    def folder(self, kind: ImageKind) -> UPath:
        """The folder of one kind of photo."""
        if kind not in IMAGE_PARTITIONS:
            raise ValueError(f"photo kind must be one of {sorted(IMAGE_PARTITIONS)}, got {kind!r}")
        return UPath(self.root) / kind

    @property
    def pairs_csv(self) -> UPath:
        """The list of pairs to try on: one ``person_file,garment_file`` per line."""
        return UPath(self.root) / "pairs.csv"

    def image_path(self, kind: ImageKind, partition_key: str) -> UPath:
        """The inbox file a partition key names: same sanitised stem, same content hash."""
        folder = self.folder(kind)
        stem, _, digest = partition_key.rpartition("-")
        for path in inbox_files(folder):
            if sanitise_stem(path.stem) == stem and file_sha256(path)[:SHORT_HASH] == digest:
                return path
        raise InboxImageNotFoundError(
            f"no file in {folder} matches partition {partition_key!r} (was it renamed, changed or removed?)"
        )
