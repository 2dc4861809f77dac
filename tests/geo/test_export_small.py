"""geo.export's geographic-frame guard: exact messages (issue 16, survivors of
``_geo_frame``). Oracle: the message texts written here by hand."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import Point

from geo import export as E


def test_geo_frame_needs_a_geodataframe() -> None:
    with pytest.raises(E.ExportError) as e:
        E._geo_frame(pd.DataFrame({"a": [1]}))
    assert str(e.value) == "Cannot export a geographic format from a frame without geometry."


def test_geo_frame_needs_a_crs() -> None:
    gdf = gpd.GeoDataFrame({"a": [1]}, geometry=[Point(113.0, 22.0)])
    with pytest.raises(E.ExportError) as e:
        E._geo_frame(gdf)
    assert str(e.value) == (
        "The enforcement list has no CRS; set it with .set_crs('EPSG:4326') before export."
    )
