"""The content cache: keys from content only, LRU by bytes in memory, NPZ on disk (never a pickle)."""

from __future__ import annotations

import threading
import zipfile

import numpy as np
import pytest

from mycloset_assets.engine_cache import CacheError, ContentCache, array_digest, content_key


def _arrays(seed: int, size: int = 1000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"values": rng.random(size).astype(np.float32), "labels": rng.integers(0, 20, (10, 10), dtype=np.uint8)}


def test_keys_follow_content_not_objects():
    image = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    assert array_digest(image) == array_digest(image.copy()) == array_digest(np.asfortranarray(image))
    changed = image.copy()
    changed[1, 3, 2] ^= 1
    assert array_digest(changed) != array_digest(image)
    assert array_digest(image.astype(np.int16)) != array_digest(image)  # same values, another dtype
    assert array_digest(image.reshape(4, 2, 3)) != array_digest(image)  # same bytes, another shape
    key = content_key(image=array_digest(image), model="ab" * 32, config={"size": [256, 192], "seed": 0})
    assert key == content_key(config={"seed": 0, "size": (256, 192)}, model="ab" * 32, image=array_digest(image))
    assert key != content_key(image=array_digest(changed), model="ab" * 32, config={"size": [256, 192], "seed": 0})
    assert len(key) == 64 and int(key, 16) >= 0
    with pytest.raises(CacheError, match="must be JSON data"):
        content_key(image=image)


def test_get_returns_what_put_stored_read_only():
    cache = ContentCache()
    key = content_key(item=1)
    assert cache.get(key) is None
    original = _arrays(0)
    stored = cache.put(key, original)
    original["values"][0] = -5.0  # the caller's array is not the cached one
    hit = cache.get(key)
    assert hit is not None and set(hit) == {"values", "labels"}
    assert hit["values"][0] != -5.0 and np.array_equal(hit["labels"], stored["labels"])
    with pytest.raises(ValueError, match="read-only"):
        hit["values"][0] = 1.0
    assert (cache.stats.memory_hits, cache.stats.misses, cache.stats.stores) == (1, 1, 1)
    with pytest.raises(CacheError, match="hex sha256"):
        cache.get("not-a-key")
    with pytest.raises(CacheError, match="Python objects"):
        cache.put(key, {"bad": np.array([{"a": 1}], dtype=object)})


def test_memory_is_an_lru_bounded_by_bytes():
    entry_bytes = sum(a.nbytes for a in _arrays(0).values())  # 4000 + 100
    cache = ContentCache(max_bytes=3 * entry_bytes)
    keys = [content_key(item=i) for i in range(4)]
    for i in range(3):
        cache.put(keys[i], _arrays(i))
    assert cache.get(keys[0]) is not None  # 0 is now the most recently used
    cache.put(keys[3], _arrays(3))  # evicts 1, the least recently used
    assert cache.memory_bytes == 3 * entry_bytes and len(cache) == 3
    assert cache.get(keys[1]) is None
    assert all(cache.get(keys[i]) is not None for i in (0, 2, 3))
    assert cache.stats.evictions == 1
    big = content_key(item="big")
    cache.put(big, _arrays(9, size=10_000))  # larger than the whole budget: not kept in memory
    assert cache.get(big) is None and cache.memory_bytes == 3 * entry_bytes


def test_disk_layer_is_npz_without_pickles_and_survives_a_new_cache(tmp_path):
    key = content_key(item="disk")
    ContentCache(max_bytes=0, directory=tmp_path).put(key, _arrays(1))
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert [p.relative_to(tmp_path).as_posix() for p in files] == [f"{key[:2]}/{key}.npz"]
    with np.load(files[0], allow_pickle=False) as data:  # plain NPZ: numpy reads it without pickles
        assert sorted(data.files) == ["labels", "values"]
    fresh = ContentCache(directory=tmp_path)
    hit = fresh.get(key)
    assert hit is not None and np.array_equal(hit["values"], _arrays(1)["values"])
    assert (fresh.stats.disk_hits, fresh.stats.memory_hits) == (1, 0)
    assert fresh.get(key) is not None and fresh.stats.memory_hits == 1  # promoted to memory
    assert key in fresh


def test_a_damaged_disk_entry_is_a_miss_and_is_removed(tmp_path):
    key = content_key(item="damaged")
    cache = ContentCache(max_bytes=0, directory=tmp_path)
    cache.put(key, _arrays(2))
    path = tmp_path / key[:2] / f"{key}.npz"
    path.write_bytes(path.read_bytes()[:100])
    assert cache.get(key) is None and not path.exists()
    with zipfile.ZipFile(path, "w") as archive, archive.open("bad.npy", "w") as member:  # a pickle: never loaded
        np.lib.format.write_array(member, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    assert cache.get(key) is None and not path.exists()


def test_threads_share_one_cache():
    cache = ContentCache(max_bytes=10**6)
    keys = [content_key(item=i) for i in range(40)]

    def work(offset: int) -> None:
        for i, key in enumerate(keys):
            if (i + offset) % 2:
                cache.put(key, _arrays(i, size=100))
            else:
                cache.get(key)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 40
    assert cache.memory_bytes == sum(sum(a.nbytes for a in _arrays(i, size=100).values()) for i in range(40))
