"""BasinWatch reference layers, catalogs and the web map builder.

The map builder (:mod:`layers.webmap`) imports folium lazily; import it explicitly.
Boundary imports and versions: :mod:`layers.importer` (read, validate, store),
:mod:`layers.versions` (activate, rollback), :mod:`layers.impact` (dry run);
:func:`active_versions` says which version of every layer results are computed with.
"""

from layers.catalog import industries
from layers.registry import (
    LayerInfo,
    active_versions,
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
    "active_versions",
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
