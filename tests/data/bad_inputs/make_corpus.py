"""Write the bad-input corpus: broken or hostile registry files and query geometries.

Usage::

    python tests/data/bad_inputs/make_corpus.py OUTDIR

Writes ``OUTDIR/registry/*.csv|*.xlsx`` and ``OUTDIR/geometry/*.json|*.wkt`` (each file's
name says what is wrong with it) and returns their paths from :func:`write_corpus`.
``tests/api/test_bad_inputs.py`` sends every file to the API; CI runs it.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

HEAD = "企业名称,统一社会信用代码,行业,地址,经度,纬度,坐标系\n"
GOOD = "潮南印染一厂,91440514MA4UJ1X94X,印染,广东省汕头市潮南区峡山街道,116.43,23.25,WGS84\n"


def _csv(text: str, encoding: str = "utf-8") -> bytes:
    return text.encode(encoding)


def _xlsx(rows: list[list[object]], *, sheets: int = 1, empty_first: bool = False) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    if empty_first:
        ws.title = "空表"
        ws = wb.create_sheet("名录")
    for row in rows:
        ws.append(row)
    for i in range(sheets - 1):
        wb.create_sheet(f"表{i + 2}")
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _rows(*data: list[object]) -> list[list[object]]:
    return [["企业名称", "行业", "地址", "经度", "纬度"], *data]


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _zip_bomb() -> bytes:
    """A valid-looking xlsx whose sheet inflates to 300 MB of XML (~300 KB zipped)."""
    base = _xlsx(_rows(["甲", "印染", "汕头", 116.4, 23.2]))
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as src, zipfile.ZipFile(
            out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                row = b'<row><c t="inlineStr"><is><t>x</t></is></c></row>'
                with dst.open(info.filename, "w", force_zip64=True) as fh:
                    fh.write(data.split(b"</sheetData>")[0].split(b"<sheetData>")[0]
                             + b"<sheetData>")
                    chunk = row * 20_000
                    for _ in range(300 * 2**20 // len(chunk)):
                        fh.write(chunk)
                    fh.write(b"</sheetData></worksheet>")
            else:
                dst.writestr(info, data)
    return out.getvalue()


def _billion_laughs() -> bytes:
    base = _xlsx(_rows(["甲", "印染", "汕头", 116.4, 23.2]))
    out = io.BytesIO()
    lol = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
           + b"".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i else "&lol;" * 10}">'
                      .encode() for i in range(9))
           + b']><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
             b'count="1" uniqueCount="1"><si><t>&lol8;</t></si></sst>')
    with zipfile.ZipFile(io.BytesIO(base)) as src, zipfile.ZipFile(
            out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, lol if info.filename == "xl/sharedStrings.xml" else data)
        if "xl/sharedStrings.xml" not in src.namelist():
            dst.writestr("xl/sharedStrings.xml", lol)
    return out.getvalue()


def registry_files() -> dict[str, Callable[[], bytes]]:
    """File name -> bytes factory."""
    rng = np.random.default_rng(14)
    return {
        "empty.csv": lambda: b"",
        "header_only.csv": lambda: _csv(HEAD),
        "bom_only.csv": lambda: b"\xef\xbb\xbf",
        "binary_garbage.csv": lambda: rng.bytes(4096),
        "utf16.csv": lambda: _csv(HEAD + GOOD, "utf-16"),
        "gb18030.csv": lambda: _csv(HEAD + GOOD, "gb18030"),
        "no_name_column.csv": lambda: _csv("行业,经度,纬度\n印染,116.4,23.2\n"),
        "unknown_headers.csv": lambda: _csv("a,b,c\n1,2,3\n"),
        "duplicate_headers.csv": lambda: _csv("企业名称,企业名称,经度,纬度\n甲,乙,116.4,23.2\n"),
        "text_coordinates.csv": lambda: _csv(HEAD + "甲,,印染,,abc,def,WGS84\n"),
        "infinite_coordinates.csv": lambda: _csv(HEAD + "甲,,印染,,Infinity,1e999,WGS84\n"
                                                 "乙,,印染,,NaN,-inf,WGS84\n"),
        "swapped_coordinates.csv": lambda: _csv(HEAD + "甲,,印染,,23.25,116.43,WGS84\n"),
        "zero_coordinates.csv": lambda: _csv(HEAD + "甲,,印染,,0,0,WGS84\n"),
        "outside_province.csv": lambda: _csv(HEAD + "甲,,印染,,2.35,48.85,WGS84\n"),
        "unknown_crs.csv": lambda: _csv(HEAD + "甲,,印染,,116.4,23.2,Mars2000\n"),
        "unknown_industry.csv": lambda: _csv(HEAD + "甲,,量子计算,,116.4,23.2,WGS84\n"),
        "bad_uscc.csv": lambda: _csv(HEAD + "甲,91440514MA4UJ1X94Y,印染,,116.4,23.2,WGS84\n"),
        "formula_names.csv": lambda: _csv(HEAD + '"=HYPERLINK(""http://evil.example"")",,印染,,'
                                                 "116.4,23.2,WGS84\n=cmd|' /C calc'!A0,,印染,,"
                                                 "116.4,23.2,WGS84\n"),
        "huge_field.csv": lambda: _csv(HEAD + "甲" * 100_000 + ",,印染,,116.4,23.2,WGS84\n"),
        "nul_bytes.csv": lambda: _csv(HEAD + "甲\x00乙,,印染,,116.4,23.2,WGS84\n"),
        "unbalanced_quotes.csv": lambda: _csv(HEAD + '"甲,,印染,,116.4,23.2,WGS84\n'),
        "mixed_newlines.csv": lambda: _csv(HEAD.replace("\n", "\r\n") + GOOD + "乙,,造纸,,"
                                           "116.2,23.3,WGS84\r"),
        "semicolons.csv": lambda: _csv(HEAD.replace(",", ";") + GOOD.replace(",", ";")),
        "tabs.csv": lambda: _csv(HEAD.replace(",", "\t") + GOOD.replace(",", "\t")),
        "thousand_columns.csv": lambda: _csv(",".join(f"c{i}" for i in range(1000)) + "\n"
                                             + ",".join("1" for _ in range(1000)) + "\n"),
        "extra_fields.csv": lambda: _csv(HEAD + GOOD.strip() + ",x,y,z\n"),
        "missing_fields.csv": lambda: _csv(HEAD + "甲,,印染\n"),
        "html_names.csv": lambda: _csv(HEAD + "<script>alert(1)</script>厂,,印染,,116.4,23.2,"
                                              "WGS84\n"),
        "gibberish_address.csv": lambda: _csv(HEAD + "甲,,印染,%%%$$$###,,,WGS84\n"),
        "negative_coordinates.csv": lambda: _csv(HEAD + "甲,,印染,,-116.4,-23.2,WGS84\n"),
        "dms_coordinates.csv": lambda: _csv(HEAD + "甲,,印染,,116°25′,23°15′,WGS84\n"),
        "xlsx_named_csv.csv": lambda: _xlsx(_rows(["甲", "印染", "汕头", 116.4, 23.2])),
        "csv_named_xlsx.xlsx": lambda: _csv(HEAD + GOOD),
        "zip_bomb.xlsx": _zip_bomb,
        "billion_laughs.xlsx": _billion_laughs,
        "empty_workbook.xlsx": lambda: _xlsx([]),
        "first_sheet_empty.xlsx": lambda: _xlsx(_rows(["甲", "印染", "汕头", 116.4, 23.2]),
                                                empty_first=True),
        "truncated.xlsx": lambda: _xlsx(_rows(["甲", "印染", "汕头", 116.4, 23.2]))[:700],
        "formulas.xlsx": lambda: _xlsx(_rows(["=1+1", "印染", "汕头", "=A2*2", 23.2])),
        "header_not_first_row.xlsx": lambda: _xlsx([["名录（内部）"], [], *_rows(
            ["甲", "印染", "汕头", 116.4, 23.2])]),
        "dates_as_coordinates.xlsx": lambda: _xlsx(_rows(["甲", "印染", "汕头", "2019-06-30",
                                                          "2019-07-01"])),
        "infinite_in_xlsx.xlsx": lambda: _xlsx(_rows(["甲", "印染", "汕头", "Infinity",
                                                      "-Infinity"])),
        "not_a_workbook.xlsx": lambda: _zip({"hello.txt": b"not a spreadsheet"}),
        "many_members.xlsx": lambda: _zip({f"m{i}.xml": b"" for i in range(10_001)}),
    }


def _ring(n: int, seed: int = 0) -> list[list[float]]:
    pts = np.random.default_rng(seed).uniform([116, 23], [117, 24], (n, 2)).tolist()
    return [*pts, pts[0]]


def _circle(n: int) -> list[list[float]]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts = np.column_stack([116.4 + 0.1 * np.cos(t), 23.2 + 0.1 * np.sin(t)]).tolist()
    return [*pts, pts[0]]


def _poly(coords: object) -> dict[str, object]:
    return {"type": "Polygon", "coordinates": coords}


SQUARE = [[116.3, 23.1], [116.6, 23.1], [116.6, 23.4], [116.3, 23.4], [116.3, 23.1]]


def geometry_files() -> dict[str, Callable[[], bytes]]:
    """File name -> bytes factory (``.json`` for POST /query/within, ``.wkt`` for within=)."""
    def j(doc: object) -> Callable[[], bytes]:
        return lambda: json.dumps(doc).encode()

    return {
        "empty_object.json": j({}),
        "no_coordinates.json": j({"type": "Polygon"}),
        "point.json": j({"type": "Point", "coordinates": [116.4, 23.2]}),
        "linestring.json": j({"type": "LineString", "coordinates": SQUARE}),
        "unclosed_ring.json": j(_poly([SQUARE[:-1]])),
        "two_positions.json": j(_poly([SQUARE[:2]])),
        "string_coordinates.json": j(_poly([[["a", "b"], ["c", "d"], ["e", "f"], ["a", "b"]]])),
        "too_deep.json": j(_poly([[[SQUARE]]])),
        "nan_literal.json": lambda: ('{"type":"Polygon","coordinates":[[[116,23],[117,23],'
                                     '[117,NaN],[116,23]]]}').encode(),
        "overflow_number.json": lambda: ('{"type":"Polygon","coordinates":[[[116,23],[117,23],'
                                         '[117,1e999],[116,23]]]}').encode(),
        "lon_500.json": j(_poly([[[500, 23], [501, 23], [501, 24], [500, 23]]])),
        "bow_tie.json": j(_poly([[[116.4, 23.2], [116.5, 23.3], [116.5, 23.2], [116.4, 23.3],
                                  [116.4, 23.2]]])),
        "random_ring_3000.json": j(_poly([_ring(3000)])),
        "empty_feature_collection.json": j({"type": "FeatureCollection", "features": []}),
        "thousand_polygons.json": j({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {}, "geometry": _poly([[
                [116 + i * 0.001, 23], [116 + i * 0.001 + 0.002, 23],
                [116 + i * 0.001 + 0.002, 23.002], [116 + i * 0.001, 23]]])}
            for i in range(1000)]}),
        "overlapping_multipolygon.json": j({"type": "MultiPolygon",
                                            "coordinates": [[SQUARE], [SQUARE]]}),
        "hole_outside_shell.json": j(_poly([SQUARE, [[120, 30], [121, 30], [121, 31],
                                                     [120, 30]]])),
        "geometry_collection.json": j({"type": "GeometryCollection", "geometries": [
            _poly([SQUARE])]}),
        "deep_nesting.json": lambda: b"[" * 100_000 + b"]" * 100_000,
        "huge_numbers.json": j(_poly([[[1e308, 1e308], [-1e308, 1e308], [0, -1e308],
                                       [1e308, 1e308]]])),
        "booleans.json": j(_poly([[[True, False], [True, True], [False, True],
                                   [True, False]]])),
        "null_geometry_feature.json": j({"type": "Feature", "geometry": None,
                                         "properties": {}}),
        "zero_area.json": j(_poly([[[116, 23], [116, 23], [116, 23], [116, 23]]])),
        "not_json.json": lambda: b"POLYGON((116 23, 117 23, 117 24, 116 23))",
        "garbage.wkt": lambda: b"POLYGON((a b, c d))",
        "empty.wkt": lambda: b"POLYGON EMPTY",
        "two_thousand_vertices.wkt": lambda: ("POLYGON((" + ",".join(
            f"{x:.5f} {y:.5f}" for x, y in _ring(2_000, 3)) + "))").encode(),
        "twelve_thousand_vertices.json": j(_poly([_circle(12_000)])),
        "valid_multipolygon.wkt": lambda: b"MULTIPOLYGON(((116.3 23.1,116.6 23.1,116.6 23.4,"
                                          b"116.3 23.1)),((113.8 22.6,114 22.6,114 22.9,"
                                          b"113.8 22.6)))",
        "infinite.wkt": lambda: b"POLYGON((116 23, inf 23, 117 24, 116 23))",
        "point.wkt": lambda: b"POINT(116.4 23.2)",
    }


def write_corpus(out: Path) -> list[Path]:
    """Write every corpus file under ``out``; returns their paths."""
    paths = []
    for sub, files in (("registry", registry_files()), ("geometry", geometry_files())):
        folder = out / sub
        folder.mkdir(parents=True, exist_ok=True)
        for name, make in files.items():
            path = folder / name
            path.write_bytes(make())
            paths.append(path)
    return paths


if __name__ == "__main__":
    written = write_corpus(Path(sys.argv[1] if len(sys.argv) > 1 else "bad_inputs"))
    print(f"{len(written)} files")
