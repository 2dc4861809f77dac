"""Geometry worker process: repairs and merges untrusted query polygons.

Run as ``python -m api._geometry_worker MEMORY_MB``. It caps its own address space
(``RLIMIT_AS``), lowers its CPU priority, and answers framed requests on stdin/stdout until
stdin closes. The server kills it when a request runs past its time limit or its client
goes away (GEOS cannot be interrupted from another thread; a process can be killed).

Request: ``op`` (1 byte, ``r`` = repair) + count (4 bytes) + per geometry length (4 bytes)
and WKB. Reply: status (1 byte, ``0`` ok / ``1`` error) + length (4 bytes) + WKB or an
UTF-8 message.
"""

from __future__ import annotations

import os
import resource
import struct
import sys

_HEAD = struct.Struct("<I")


def _read_exact(stream: object, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))  # type: ignore[attr-defined]
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def repair(wkbs: list[bytes]) -> bytes:
    """Valid polygonal union of the given polygons (``make_valid`` method "structure")."""
    import numpy as np
    import shapely

    geoms = shapely.from_wkb(np.array(wkbs, dtype=object))
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        geoms[bad] = shapely.make_valid(geoms[bad], method="structure", keep_collapsed=False)
    merged = geoms[0] if len(geoms) == 1 else shapely.union_all(geoms)
    if merged.geom_type == "GeometryCollection":
        parts = [g for g in shapely.get_parts(merged) if g.geom_type in ("Polygon",
                                                                       "MultiPolygon")]
        merged = shapely.union_all(parts) if parts else shapely.Polygon()
    return shapely.to_wkb(merged)


def main() -> None:
    """Serve requests until stdin closes."""
    limit = int(sys.argv[1]) * 1024 * 1024 if len(sys.argv) > 1 else 0
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.nice(10)  # normal requests of the server come first
    import shapely  # noqa: F401 - loaded before the first request

    inp, out = sys.stdin.buffer, sys.stdout.buffer
    out.write(b"R")  # ready
    out.flush()
    while True:
        try:
            op = _read_exact(inp, 1)
            (count,) = _HEAD.unpack(_read_exact(inp, 4))
            wkbs = [_read_exact(inp, _HEAD.unpack(_read_exact(inp, 4))[0]) for _ in range(count)]
        except EOFError:
            return
        try:
            if op != b"r":
                raise ValueError(f"unknown operation {op!r}")
            status, payload = b"0", repair(wkbs)
        except MemoryError:
            status, payload = b"1", b"memory"
        except Exception as exc:  # noqa: BLE001 - GEOS raises several types
            status, payload = b"1", f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")
        out.write(status + _HEAD.pack(len(payload)) + payload)
        out.flush()


if __name__ == "__main__":
    main()
