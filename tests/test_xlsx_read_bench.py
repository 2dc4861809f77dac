"""benchmarks/xlsx_read.py: the two XLSX engines read the generated registry workbook to
equal frames, and the table reports each engine (the benchmark's own claim, checked on a
small workbook written to a temp dir)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import xlsx_read  # noqa: E402


def test_engines_read_the_same_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    out = tmp_path / "B.md"
    xlsx_read.main(["--size", "300", "--cache", str(tmp_path), "--out", str(out)])
    table = capsys.readouterr().out
    rows = [r for r in table.splitlines() if r.startswith("| calamine") or
            r.startswith("| openpyxl")]
    assert len(rows) == 2 and rows[1].endswith("| equal |"), table
    # second method: the workbook read back by openpyxl directly has the CSV's row count
    wb = tmp_path / "registry_300_s2019.xlsx"
    csv = pd.read_csv(tmp_path / "registry_300_s2019.csv", dtype=str, keep_default_na=False)
    assert len(pd.read_excel(wb, engine="openpyxl")) == len(csv)
    assert "<!-- begin:xlsx-read-300 -->" in out.read_text("utf-8")
