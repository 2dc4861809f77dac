"""The previous writers, kept only as the benchmark's baseline: the Excel workbook written
cell by cell with openpyxl and the CSV by ``DataFrame.to_csv`` (geo.export before issue 15).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from geo import export as ex

__all__ = ["write_xlsx_openpyxl", "write_csv_pandas"]


def write_xlsx_openpyxl(gdf: pd.DataFrame, path: Path) -> Path:
    """The enforcement workbook as geo.export wrote it with openpyxl (same sheets)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    df = ex._enforcement_frame(gdf)
    verdicts = ex.catalog_verdict_labels()
    prov = ex._provenance_for(df, None)
    labels = ex._labels()
    words = labels["words"]
    by_zone, by_ind = ex._summary_tables(df, verdicts)
    display = ex._display_frame(df, verdicts)
    wb = Workbook()
    ws = wb.active
    ws.title = labels["sheets"]["summary"]
    ex._write_table(ws, by_zone, autofilter=True)
    ex._write_table(ws, by_ind, start_row=len(by_zone) + 3, autofilter=False)
    rej_row = len(by_zone) + len(by_ind) + 6
    ws.cell(row=rej_row - 1, column=1, value=words["rejected_rows"]).font = Font(bold=True)
    ex._write_table(ws, ex._rejected_summary(None, prov.rejected), start_row=rej_row,
                    autofilter=False)
    ws.freeze_panes = "B2"
    sheets = [(labels["sheets"]["all"], display)]
    for zid, zname in labels["zones"].items():
        member = (df["basin_id"].eq(zid) | df["region_id"].eq(zid)).to_numpy()
        if member.any():
            sheets.append((zname, display[member]))
    for title, frame in sheets:
        sheet = wb.create_sheet(title)
        ex._write_table(sheet, frame, autofilter=True)
        sheet.freeze_panes = "A2"
    ex._write_notes(wb.create_sheet(labels["sheets"]["notes"]), prov)
    wb.save(path)
    return path


def write_csv_pandas(gdf: pd.DataFrame, path: Path) -> Path:
    """The enforcement CSV as geo.export wrote it with pandas."""
    frame = ex._enforcement_frame(gdf)
    frame["needs_review"] = ex._bool_text(frame["needs_review"], "true", "false")
    ex.neutralise_frame(frame).to_csv(path, index=False, encoding="utf-8-sig",
                                      lineterminator=ex.CSV_LINE_END)
    return path
