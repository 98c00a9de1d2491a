"""Partition keys of photos and pairs, and finding a partition's file in the inbox."""

import hashlib

import pytest

from mycloset_assets.defs.partitions import (
    InboxImageNotFoundError,
    InboxResource,
    image_partition_key,
    pair_key,
    sanitise_stem,
    split_pair_key,
)


def test_image_key_is_readable_stable_and_content_addressed(tmp_path):
    photo = tmp_path / "Ann Smith (1).JPG"
    photo.write_bytes(b"some bytes")
    digest = hashlib.sha256(b"some bytes").hexdigest()
    key = image_partition_key(photo)
    assert key == f"ann-smith-1-{digest[:12]}"
    assert image_partition_key(photo, digest) == key
    photo.write_bytes(b"other bytes")
    assert image_partition_key(photo) != key


@pytest.mark.parametrize(
    ("stem", "slug"), [("...", "image"), ("été|x", "t-x"), ("a" * 80, "a" * 48), ("under_score", "under_score")]
)
def test_sanitise_stem(stem, slug):
    assert sanitise_stem(stem) == slug


def test_pair_keys_round_trip():
    assert split_pair_key(pair_key("ann-0123", "shirt-4567")) == ("ann-0123", "shirt-4567")
    for bad in ("ann", "|shirt", "ann|", "a|b|c"):
        with pytest.raises(ValueError, match="pair key"):
            split_pair_key(bad)
    with pytest.raises(ValueError, match="free of"):
        pair_key("a|b", "c")


def test_image_path_finds_the_file_by_name_and_content(tmp_path):
    inbox = InboxResource(root=str(tmp_path))
    folder = inbox.folder("person")
    folder.mkdir()
    (folder / "ann.png").write_bytes(b"ann")
    (folder / "bob.png").write_bytes(b"bob")
    key = image_partition_key(folder / "ann.png")
    assert inbox.image_path("person", key) == folder / "ann.png"
    (folder / "ann.png").write_bytes(b"ann, edited")
    with pytest.raises(InboxImageNotFoundError, match="ann"):
        inbox.image_path("person", key)
    with pytest.raises(ValueError, match="kind"):
        inbox.folder("shoes")
