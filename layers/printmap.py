"""Print / export of the current map as PNG or PDF (A4 / A3 landscape), with matplotlib.

Why matplotlib: it is already how the project draws static figures, works offline, writes
real vector PDF (reference polygons and text stay sharp in a report; dense point layers
are rasterised inside the PDF) and PNG at a chosen resolution from the same drawing, embeds
the CJK font (Noto Sans CJK from Debian ``fonts-noto-cjk``), and needs no browser on the
server. The sheet has the title, the map (Web Mercator, like the screen) with the visible
reference layers and the enterprises coloured by verdict, a legend, a scale bar (ground
distance at the map's centre latitude), a north arrow, the data version and date, and the
filters and area in words.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.errors import ExportError, InvalidQueryError

__all__ = ["render_print", "PAPERS", "nice_length", "find_cjk_font"]

log = logging.getLogger(__name__)

#: Paper sizes in mm, landscape (ISO 216); overridden by webmap.toml [print] papers.
PAPERS: dict[str, tuple[float, float]] = {"A4": (297.0, 210.0), "A3": (420.0, 297.0)}
_MM = 1 / 25.4
_R = 6378137.0
_CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC",
                 "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC")


def find_cjk_font() -> str:
    """Family name of an installed CJK font matplotlib can use.

    Raises
    ------
    ExportError
        If none is installed (the sheet would print boxes instead of Chinese).
    """
    from matplotlib import font_manager

    for attempt in range(2):
        names = {f.name for f in font_manager.fontManager.ttflist}
        for family in _CJK_FAMILIES:
            if family in names:
                return family
        if attempt == 0:  # a font cache built before the font was installed: add the files
            for path in font_manager.findSystemFonts():
                if "CJK" in path or "WenQuanYi" in path:
                    try:
                        font_manager.fontManager.addfont(path)
                    except (OSError, RuntimeError, ValueError) as exc:
                        log.debug("cannot add font %s: %s", path, exc)
    raise ExportError("Printing the map needs a Chinese font: install Debian's fonts-noto-cjk "
                      "(apt-get install fonts-noto-cjk), then restart the server.")


def nice_length(metres: float) -> float:
    """The largest 1, 2 or 5 x 10^k metres not above ``metres``."""
    if metres <= 0:
        raise InvalidQueryError("scale bar: the map is empty.")
    k = 10 ** math.floor(math.log10(metres))
    for m in (5, 2, 1):
        if m * k <= metres:
            return float(m * k)
    return float(k)


def _merc(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lat = np.clip(lat, -85.05112878, 85.05112878)
    return (np.radians(lon) * _R, np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) * _R)


def _scale_bar(ax: Any, bounds: tuple[float, float, float, float], lat: float,
               lang: str) -> float:
    """Draw a scale bar bottom-left; return its ground length in metres."""
    x0, y0, x1, y1 = bounds
    k = math.cos(math.radians(lat))  # ground metres per Web Mercator metre
    ground = nice_length((x1 - x0) * k / 5)
    length = ground / k
    bx, by = x0 + (x1 - x0) * 0.04, y0 + (y1 - y0) * 0.05
    h = (y1 - y0) * 0.008
    ax.add_patch(_rect(bx, by, length / 2, h, "#222222"))
    ax.add_patch(_rect(bx + length / 2, by, length / 2, h, "#ffffff"))
    unit = ("km", 1000.0) if ground >= 1000 else (("m" if lang == "en" else "米"), 1.0)
    unit_name = unit[0] if lang == "en" or unit[0] != "km" else "公里"
    ax.text(bx, by + 2.2 * h, "0", ha="center", va="bottom", fontsize=7)
    ax.text(bx + length, by + 2.2 * h, f"{ground / unit[1]:g} {unit_name}", ha="center",
            va="bottom", fontsize=7)
    return ground


def _rect(x: float, y: float, w: float, h: float, colour: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, facecolor=colour, edgecolor="#222222", linewidth=0.6,
                     zorder=20)


def _north_arrow(ax: Any, lang: str) -> None:
    ax.annotate("", xy=(0.95, 0.95), xytext=(0.95, 0.86), xycoords="axes fraction",
                arrowprops={"arrowstyle": "-|>", "color": "#222222", "lw": 1.6,
                            "mutation_scale": 16}, zorder=21)
    ax.text(0.95, 0.96, "N" if lang == "en" else "北", transform=ax.transAxes, ha="center",
            va="bottom", fontsize=10, fontweight="bold", zorder=21)


def render_print(
    enterprises: pd.DataFrame,
    reference: Sequence[tuple[gpd.GeoDataFrame, Mapping[str, Any], str]],
    *,
    bbox: tuple[float, float, float, float],
    verdicts: Sequence[tuple[str, str, str]],
    title: str,
    notes: Sequence[tuple[str, str]],
    fmt: str = "pdf",
    paper: str = "A4",
    lang: str = "zh",
    dpi: int = 200,
    papers: Mapping[str, Sequence[float]] | None = None,
) -> bytes:
    """The map sheet as PDF or PNG bytes.

    Parameters
    ----------
    enterprises
        ``lon``, ``lat``, ``verdict`` of the enterprises to draw (already filtered).
    reference
        ``(frame, leaflet style, title)`` per visible reference layer, bottom to top.
    bbox
        ``(west, south, east, north)`` of the view, WGS84.
    verdicts
        ``(id, label, colour)`` strongest first.
    notes
        ``(label, text)`` rows printed under the legend (data version, filters, area).
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fmt = fmt.lower()
    if fmt not in ("pdf", "png"):
        raise InvalidQueryError(f"format: expected pdf or png, got '{fmt}'.")
    sizes = {k: tuple(v) for k, v in (papers or PAPERS).items()}
    if paper not in sizes:
        raise InvalidQueryError(f"paper: expected one of {', '.join(sizes)}, got '{paper}'.")
    west, south, east, north = bbox
    if not (west < east and south < north):
        raise InvalidQueryError(f"bbox: expected west < east and south < north, got {bbox}.")
    family = find_cjk_font()
    w_mm, h_mm = sizes[paper]
    fig = Figure(figsize=(w_mm * _MM, h_mm * _MM), dpi=dpi)
    fig.text(0.5, 0.965, title, ha="center", va="top", fontsize=16, fontweight="bold",
             family=family)
    ax = fig.add_axes((0.03, 0.05, 0.70, 0.86))
    x0, y0 = _merc(np.array([west]), np.array([south]))
    x1, y1 = _merc(np.array([east]), np.array([north]))
    box = (float(x0[0]), float(y0[0]), float(x1[0]), float(y1[0]))
    # grow the box to the axes' aspect so the view is kept whole
    ax_w, ax_h = 0.70 * w_mm, 0.86 * h_mm
    bw, bh = box[2] - box[0], box[3] - box[1]
    if bw / bh < ax_w / ax_h:
        pad = (bh * ax_w / ax_h - bw) / 2
        box = (box[0] - pad, box[1], box[2] + pad, box[3])
    else:
        pad = (bw * ax_h / ax_w - bh) / 2
        box = (box[0], box[1] - pad, box[2], box[3] + pad)
    ax.set_xlim(box[0], box[2])
    ax.set_ylim(box[1], box[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("#f4f6f8")
    handles: list[Any] = []
    for frame, style, layer_title in reference:
        if frame.empty:
            continue
        merc = frame.to_crs("EPSG:3857")
        fill = style.get("fillColor") or "none"
        merc.plot(ax=ax, facecolor=fill if style.get("fillOpacity", 0) else "none",
                  edgecolor=style.get("color", "#666666"),
                  linewidth=float(style.get("weight", 1)) * 0.5,
                  alpha=None, zorder=2)
        if style.get("fillOpacity"):
            for coll in ax.collections[-1:]:
                coll.set_alpha(None)
                coll.set_facecolor(_rgba(fill, float(style["fillOpacity"])))
        handles.append(Patch(facecolor=_rgba(fill, float(style.get("fillOpacity", 0) or 0)),
                             edgecolor=style.get("color", "#666666"), label=layer_title))
    lookup = {v: i for i, (v, _l, _c) in enumerate(verdicts)}
    if len(enterprises):
        ex, ey = _merc(enterprises["lon"].to_numpy(float), enterprises["lat"].to_numpy(float))
        codes = enterprises["verdict"].map(lookup).fillna(len(verdicts)).to_numpy(int)
        order = np.argsort(-codes, kind="stable")  # strongest drawn last, on top
        colours = np.array([c for _v, _l, c in verdicts] + ["#cccccc"])[codes[order]]
        size = 9 if len(enterprises) < 2000 else (4 if len(enterprises) < 50_000 else 1.2)
        ax.scatter(ex[order], ey[order], s=size, c=colours, edgecolors="#333333",
                   linewidths=0.2 if size > 2 else 0, zorder=5,
                   rasterized=len(enterprises) > 20_000)
    counts = enterprises["verdict"].value_counts() if len(enterprises) else pd.Series(dtype=int)
    vhandles = [Line2D([], [], marker="o", linestyle="", markerfacecolor=c,
                       markeredgecolor="#333333", markersize=6,
                       label=f"{label}（{int(counts.get(v, 0))}）" if lang == "zh"
                       else f"{label} ({int(counts.get(v, 0))})")
                for v, label, c in verdicts]
    lat_c = (south + north) / 2
    ground = _scale_bar(ax, box, lat_c, lang)
    _north_arrow(ax, lang)
    legend_title = "图例" if lang == "zh" else "Legend"
    leg = fig.legend(handles=vhandles + handles, loc="upper left",
                     bbox_to_anchor=(0.755, 0.91), frameon=False, title=legend_title,
                     prop={"family": family, "size": 8},
                     title_fontproperties={"family": family, "size": 10, "weight": "bold"})
    del leg
    y = 0.45
    for label, text in notes:
        fig.text(0.755, y, f"{label}：{text}" if lang == "zh" else f"{label}: {text}",
                 ha="left", va="top", fontsize=7, family=family, wrap=True)
        y -= 0.035 * (1 + len(text) // 40)
    fig.text(0.755, 0.05, ("比例尺按地图中心纬度计算；" if lang == "zh" else
                           "Scale bar at the centre latitude; ") +
             ("坐标系 WGS84 / Web 墨卡托" if lang == "zh" else "WGS84 / Web Mercator"),
             ha="left", va="bottom", fontsize=6, family=family, color="#555555")
    ax.set_xlabel("")
    ax.set_ylabel("")
    for text in ax.texts:
        text.set_family(family)
    buf = io.BytesIO()
    meta = ({"Title": title, "Creator": "BasinWatch", "CreationDate": datetime.now()}
            if fmt == "pdf" else {"Title": title, "Software": "BasinWatch"})
    fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta)
    log.info("printed %s %s, %d enterprises, scale bar %g m", paper, fmt, len(enterprises),
             ground)
    return buf.getvalue()


def _rgba(colour: str, alpha: float) -> tuple[float, float, float, float]:
    from matplotlib.colors import to_rgba

    if colour in ("none", "", None):
        return (0.0, 0.0, 0.0, 0.0)
    return to_rgba(colour, alpha)
