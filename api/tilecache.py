"""Encoded vector tiles kept in memory, keyed by the data version they were cut from.

A key holds the store's identity and data version (:func:`api.tiles.tile_key`), so a new
load changes every key: tiles of the old version are never served again and age out of
the LRU. The cache is bounded by the bytes it holds, not by a tile count (a dense tile is
~120 KiB, an empty one 0). The gzip encoding of a tile is made once, on first request by a
client accepting it, and kept beside the raw bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

__all__ = ["CachedTile", "TileCache", "GZIP_MIN_BYTES"]

#: Tiles smaller than this are sent as they are (gzip gains nothing on a few hundred bytes).
GZIP_MIN_BYTES = 1024


@dataclass
class CachedTile:
    """One encoded tile, its ETag and (once asked for) its gzip encoding."""

    body: bytes
    etag: str
    gz: bytes | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        """Bytes held (raw + gzip)."""
        return len(self.body) + len(self.gz or b"")


def etag_of(key: Hashable) -> str:
    """A strong ETag naming ``key`` (the key holds the data version, so it changes with it)."""
    return '"' + hashlib.blake2b(repr(key).encode("utf-8"), digest_size=12).hexdigest() + '"'


class TileCache:
    """Thread-safe LRU of :class:`CachedTile` bounded by ``max_bytes``.

    Parameters
    ----------
    max_bytes
        Bytes of tile bodies (raw + gzip) kept at most; least recently used go first.
    """

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._tiles: OrderedDict[Hashable, CachedTile] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._tiles)

    @property
    def nbytes(self) -> int:
        """Bytes currently held."""
        return self._bytes

    def get(self, key: Hashable) -> CachedTile | None:
        """The tile of ``key`` (marked recently used), or None."""
        with self._lock:
            hit = self._tiles.get(key)
            if hit is None:
                self.misses += 1
                return None
            self._tiles.move_to_end(key)
            self.hits += 1
            return hit

    def peek(self, key: Hashable) -> CachedTile | None:
        """The tile of ``key`` or None, without counting a miss (the lean tile path asks
        first and hands misses to the route, which counts them); see :meth:`touch`."""
        return self._tiles.get(key)

    def touch(self, key: Hashable) -> None:
        """Count a hit on ``key`` and mark it recently used (after :meth:`peek`)."""
        with self._lock:
            if key in self._tiles:
                self._tiles.move_to_end(key)
                self.hits += 1

    def put(self, key: Hashable, body: bytes) -> CachedTile:
        """Keep ``body`` under ``key``; returns the cached tile."""
        tile = CachedTile(body, etag_of(key))
        with self._lock:
            old = self._tiles.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._tiles[key] = tile
            self._bytes += tile.size
            self._evict()
        return tile

    def gzipped(self, key: Hashable, tile: CachedTile) -> bytes:
        """The gzip encoding of ``tile`` (made once; level 6, deterministic: mtime 0)."""
        if tile.gz is None:
            gz = gzip.compress(tile.body, compresslevel=6, mtime=0)
            with self._lock:
                if tile.gz is None:
                    tile.gz = gz
                    if self._tiles.get(key) is tile:
                        self._bytes += len(gz)
                        self._evict()
        return tile.gz

    def clear(self) -> None:
        """Drop every tile."""
        with self._lock:
            self._tiles.clear()
            self._bytes = 0

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and len(self._tiles) > 1:
            _, old = self._tiles.popitem(last=False)
            self._bytes -= old.size
