"""RFC 7946 GeoJSON text built column by column with Arrow kernels.

GDAL's GeoJSON driver (through pyogrio) writes about 16k features per second here: a
200k-row enforcement list took 12 s, the largest stage of ``basinwatch run``. This writer
turns each column into JSON text once (numbers and booleans by Arrow casts, text escaped by
substring replacement, missing values as ``null``), joins the columns of a chunk of rows
element-wise into feature texts, and writes the chunk's text buffer as is. Geometries are
written by GEOS (``shapely.to_geojson``, vectorised) after rounding coordinates to the
requested decimals. Values Arrow cannot hold (mixed Python objects) go through ``json``
one by one; they are rare (none in the enforcement list).

The output is read back by GDAL (pyogrio) and by ``json`` in the tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

__all__ = ["feature_collection_chunks"]

#: Rows per chunk: bounds the memory of the text being built.
CHUNK_ROWS: Final = 50_000
#: JSON escapes of the two characters every string may hold (control characters: below).
_ESCAPES: Final = (("\\", "\\\\"), ('"', '\\"'))
_CONTROL: Final = r"[\x00-\x1f]"


def feature_collection_chunks(
    frame: gpd.GeoDataFrame, *, members: dict[str, Any] | None = None,
    decimals: int = 7, rows: int = CHUNK_ROWS,
) -> Iterator[bytes]:
    """A FeatureCollection of ``frame`` (WGS84) as UTF-8 bytes, ``rows`` features at a time.

    Parameters
    ----------
    frame
        Features: every non-geometry column becomes a property, in column order.
    members
        Foreign members of the collection (RFC 7946 section 6.1), written before the features.
    decimals
        Decimals of the coordinates (the properties keep their values).
    rows
        Features per chunk.
    """
    head = {"type": "FeatureCollection", **(members or {})}
    yield (json.dumps(head, ensure_ascii=False)[:-1] + ', "features": [\n').encode("utf-8")
    names = [c for c in frame.columns if c != frame.geometry.name]
    keys = [json.dumps(str(c), ensure_ascii=False) for c in names]
    for start in range(0, len(frame), rows):
        part = frame.iloc[start:start + rows]
        texts = _feature_texts(part, names, keys, decimals, first=start == 0)
        yield _buffer(texts)
    yield b"\n]}\n"


def _feature_texts(part: gpd.GeoDataFrame, names: list[str], keys: list[str],
                   decimals: int, *, first: bool) -> pa.Array:
    """One JSON feature per row, each after a ``,\\n`` separator (not the very first)."""
    pieces: list[Any] = []
    for i, (name, key) in enumerate(zip(names, keys, strict=True)):
        pieces += [("{" if i == 0 else ",") + key + ":", _json_column(part[name])]
    if not names:
        pieces.append("{")
    pieces.append('},"geometry":')
    pieces.append(_geometry_texts(part.geometry.values, decimals))
    sep = np.full(len(part), ",\n", dtype=object)
    if first and len(part):
        sep[0] = ""
    parts = [pa.array(sep, pa.string()), '{"type":"Feature","properties":', *pieces, "}"]
    return pc.binary_join_element_wise(*parts, "")


def _buffer(texts: pa.Array) -> bytes:
    """The bytes of all values of a string array, concatenated (its data buffer's span)."""
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int32)
    lo, hi = offsets[texts.offset], offsets[texts.offset + len(texts)]
    data = texts.buffers()[2]
    return b"" if data is None else data.slice(int(lo), int(hi - lo)).to_pybytes()


def _geometry_texts(geoms: Any, decimals: int) -> pa.Array:
    arr = np.asarray(geoms, dtype=object)
    rounded = shapely.transform(arr, lambda xy: np.round(xy, decimals))
    text = shapely.to_geojson(rounded)
    return pa.array(np.where(pd.isna(text), "null", text), pa.string())


def _json_column(values: pd.Series) -> pa.Array:
    """JSON text of each value of a column; ``null`` where missing."""
    if isinstance(values.dtype, pd.CategoricalDtype):  # each category's text once
        texts = _json_column(pd.Series(values.cat.categories))
        codes = values.cat.codes.to_numpy()
        return pc.fill_null(pc.take(texts, pa.array(codes, mask=codes < 0)), "null")
    if values.dtype == bool:  # numpy booleans (nullable "boolean" goes through Arrow)
        return pa.array(np.where(values.to_numpy(), "true", "false"), pa.string())
    try:
        arr = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return _json_objects(values)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    kind = arr.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = _json_strings(arr.cast(pa.string()))
    elif pa.types.is_integer(kind):
        text = arr.cast(pa.string())
    elif pa.types.is_floating(kind):
        text = _json_floats(arr)
    elif pa.types.is_boolean(kind):
        text = pc.if_else(arr, "true", "false")
    elif pa.types.is_null(kind):
        text = pa.nulls(len(arr), pa.string())
    else:
        return _json_objects(values)
    return pc.fill_null(text, "null")


def _json_strings(arr: pa.Array) -> pa.Array:
    """Quoted, escaped JSON strings; rows with control characters escaped by ``json``."""
    text = arr
    for raw, esc in _ESCAPES:
        text = pc.replace_substring(text, raw, esc)
    text = pc.binary_join_element_wise('"', text, '"', "")
    if not _has_control_bytes(arr):  # the common case: one numpy pass over the bytes
        return text
    control = pc.fill_null(pc.match_substring_regex(arr, _CONTROL), False)
    if pc.any(control).as_py():
        rows = np.flatnonzero(control.to_numpy(zero_copy_only=False))
        exact = text.to_numpy(zero_copy_only=False).astype(object)
        raw = arr.to_pylist()
        exact[rows] = [json.dumps(raw[r], ensure_ascii=False) for r in rows]
        text = pa.array(exact, pa.string())
    return text


def _has_control_bytes(arr: pa.Array) -> bool:
    """Whether any value of a string array holds a byte below 0x20 (UTF-8 continuation and
    lead bytes are all >= 0x80, so such a byte is always a control character)."""
    _, off_buf, data_buf = arr.buffers()
    if data_buf is None:
        return False
    offsets = np.frombuffer(off_buf, dtype=np.int32)
    lo, hi = offsets[arr.offset], offsets[arr.offset + len(arr)]
    return bool((np.frombuffer(data_buf, dtype=np.uint8)[lo:hi] < 0x20).any())


def _json_floats(arr: pa.Array) -> pa.Array:
    """Shortest round-trip text of each float; NaN and infinities (not JSON) are ``null``;
    integral values keep a ``.0`` so readers still see a real field."""
    finite = pc.is_finite(arr)
    text = arr.cast(pa.float64()).cast(pa.string())
    integral = pc.invert(pc.or_(pc.match_substring(text, "."), pc.match_substring(text, "e")))
    text = pc.if_else(integral, pc.binary_join_element_wise(text, ".0", ""), text)
    return pc.if_else(finite, text, pa.scalar(None, pa.string()))


def _json_objects(values: pd.Series) -> pa.Array:
    """``json`` of each value (the slow path for columns Arrow cannot type)."""
    out = [None if _missing(v) else json.dumps(_plain(v), ensure_ascii=False)
           for v in values.tolist()]
    return pc.fill_null(pa.array(out, pa.string()), "null")


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(value).isoformat()
    return value if isinstance(value, (str, int, float, bool, list, dict)) else str(value)
