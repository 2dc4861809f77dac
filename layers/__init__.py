"""BasinWatch reference layers, catalogs and the web map builder.

The map builder (:mod:`layers.webmap`) imports folium lazily; import it explicitly.
"""

from layers.catalog import industries
from layers.registry import (
    LayerInfo,
    LayerStyle,
    PopupField,
    Provenance,
    layer_info,
    list_layers,
    load_group,
    load_layer,
    province_bounds,
)

__all__ = [
    "LayerInfo",
    "LayerStyle",
    "PopupField",
    "Provenance",
    "industries",
    "layer_info",
    "list_layers",
    "load_group",
    "load_layer",
    "province_bounds",
]
