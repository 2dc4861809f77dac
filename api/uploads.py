"""Checks on an uploaded registry file before anything parses it.

The body's size is bounded while it streams in (:class:`api.limits.LimitsMiddleware`);
here the file itself is bounded before the pipeline reads it:

- ``.xlsx``: a valid zip whose members' declared uncompressed sizes add up to at most
  ``BASINWATCH_MAX_XLSX_UNCOMPRESSED_MB`` (``zipfile`` never inflates a member past its
  declared size, so the check bounds the real work), with at most
  ``BASINWATCH_MAX_REGISTRY_ROWS`` ``<row>`` elements over its worksheets, counted by
  streaming the XML without parsing it (no entity expansion, stops at the cap);
- ``.csv``: at most ``BASINWATCH_MAX_REGISTRY_ROWS`` lines after the header.

Errors are 413 (``PayloadTooLarge``) or 400 OGC exceptions naming the limit.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from typing import Any

from api.limits import PayloadTooLargeError
from geo.errors import RegistryFormatError

__all__ = ["check_registry_file", "count_xlsx_rows"]

log = logging.getLogger(__name__)

_ROW = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?row[\s>/]")
_MAX_MEMBERS = 10_000
_CHUNK = 1 << 20


def count_xlsx_rows(zf: zipfile.ZipFile, *, cap: int) -> int:
    """``<row>`` elements over the worksheets of an open xlsx (stops once past ``cap``)."""
    n = 0
    for info in zf.infolist():
        if not re.match(r"^xl/worksheets/[^/]+\.xml$", info.filename):
            continue
        tail = b""
        with zf.open(info) as fh:
            while chunk := fh.read(_CHUNK):
                buf = tail + chunk
                n += len(_ROW.findall(buf))
                if n > cap:
                    return n
                # keep the end of the chunk: a tag may straddle two chunks
                cut = buf.rfind(b"<")
                tail = buf[cut:] if cut >= 0 and len(buf) - cut < 64 else b""
                if tail:
                    n -= len(_ROW.findall(tail))
    return n


def check_registry_file(name: str, data: bytes, settings: Any) -> None:
    """Raise if ``data`` exceeds the registry limits (see the module docstring).

    Raises
    ------
    PayloadTooLargeError
        Decompressed size or rows above the limit.
    RegistryFormatError
        The ``.xlsx`` is not a readable zip.
    """
    max_rows = settings.max_registry_rows
    too_many = (f"file: more than BASINWATCH_MAX_REGISTRY_ROWS={max_rows:,} rows; split the "
                "registry or load it with `basinwatch load`.")
    if name.lower().endswith(".csv"):
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        if lines - 1 > max_rows:
            raise PayloadTooLargeError(too_many)
        return
    cap = settings.max_xlsx_uncompressed_mb * 1024 * 1024
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > _MAX_MEMBERS:
                raise PayloadTooLargeError(f"file: {len(infos):,} zip members; an .xlsx "
                                           f"registry has a few dozen at most.")
            total = sum(i.file_size for i in infos)
            if total > cap:
                raise PayloadTooLargeError(
                    f"file: expands to {total / 2**20:,.0f} MB, more than "
                    f"BASINWATCH_MAX_XLSX_UNCOMPRESSED_MB={settings.max_xlsx_uncompressed_mb}."
                )
            rows = count_xlsx_rows(zf, cap=max_rows + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError,
            ValueError) as exc:
        if isinstance(exc, PayloadTooLargeError):
            raise
        raise RegistryFormatError(f"file: '{name}' is not a readable .xlsx workbook ({exc}).") from exc
    if rows - 1 > max_rows:
        raise PayloadTooLargeError(too_many)
