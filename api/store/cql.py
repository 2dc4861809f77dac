"""CQL2 text filters: parse once with pygeofilter, evaluate per provider.

The text is parsed to pygeofilter's AST; the AST is then turned into a boolean mask over a
GeoDataFrame (embedded store, reference layers) or a SQLAlchemy expression with bound
parameters (PostGIS). User input never reaches SQL as text.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from pygeofilter import ast, values
from pygeofilter.backends.evaluator import handle
from pygeofilter.backends.geopandas.evaluate import GeoPandasEvaluator

from geo.errors import InvalidQueryError

__all__ = ["parse_cql", "frame_mask", "sql_filter", "like_to_regex"]

log = logging.getLogger(__name__)

_GEOMETRY_NAMES = ("geometry", "geom", "the_geom")


_LOGICAL = (ast.And, ast.Or, ast.Not)


def parse_cql(
    text: str,
    *,
    max_chars: int | None = None,
    max_terms: int | None = None,
    max_vertices: int | None = None,
) -> ast.Node:
    """Parse CQL2 text into a pygeofilter AST, within the service limits.

    Parameters
    ----------
    text
        CQL2 text.
    max_chars, max_terms, max_vertices
        Longest text, most AND/OR/NOT terms, most vertices of all geometry literals
        (defaults: ``layers/data/service_limits.toml``).

    Raises
    ------
    InvalidQueryError
        Naming the ``filter`` parameter and where parsing stopped.
    LimitExceededError
        Naming the limit exceeded.
    """
    from pygeofilter.parsers.cql2_text import parse

    from api.limits import LimitExceededError
    from api.settings import limit_defaults

    limits = limit_defaults()
    max_chars = max_chars or limits["max_filter_chars"]
    max_terms = max_terms or limits["max_filter_terms"]
    max_vertices = max_vertices or limits["max_vertices"]
    if len(text) > max_chars:
        raise LimitExceededError(
            f"filter: {len(text)} characters, more than BASINWATCH_MAX_FILTER_CHARS="
            f"{max_chars}; use IN (...) lists instead of long OR chains."
        )
    try:
        node = parse(text)
    except RecursionError as exc:
        raise LimitExceededError(
            f"filter: nested too deeply (BASINWATCH_MAX_FILTER_TERMS={max_terms})."
        ) from exc
    except Exception as exc:  # lark raises its own hierarchy
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidQueryError(
            f"filter: not valid CQL2 text ({first}); expected e.g. "
            "\"verdict = 'shutdown' AND industry IN ('印染','造纸')\"."
        ) from exc
    _check_size(node, max_terms=max_terms, max_vertices=max_vertices)
    return node


def _check_size(node: ast.Node, *, max_terms: int, max_vertices: int) -> None:
    """Count logical terms and geometry vertices without recursion."""
    from api.geometry import count_coordinates
    from api.limits import LimitExceededError

    terms = vertices = 0
    stack: list[Any] = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, _LOGICAL):
            terms += 1
            if terms > max_terms:
                raise LimitExceededError(
                    f"filter: more than BASINWATCH_MAX_FILTER_TERMS={max_terms} AND/OR/NOT "
                    "terms; use IN (...) lists instead of long OR chains."
                )
        if isinstance(n, values.Geometry):
            geo = n.geometry if isinstance(n.geometry, dict) else {}
            depth = {"Point": 1, "LineString": 2, "MultiPoint": 2, "Polygon": 3,
                     "MultiLineString": 3, "MultiPolygon": 4}.get(str(geo.get("type")))
            if depth is None:
                raise InvalidQueryError(f"filter: unsupported geometry {geo.get('type')}.")
            vertices += count_coordinates(geo.get("coordinates"), depth, param="filter",
                                          cap=max_vertices - vertices)
        elif isinstance(n, values.Envelope):
            vals = (n.x1, n.x2, n.y1, n.y2)
            if not all(isinstance(v, int | float) and math.isfinite(v) for v in vals):
                raise InvalidQueryError("filter: ENVELOPE needs four finite numbers.")
        if hasattr(n, "get_sub_nodes"):
            stack.extend(n.get_sub_nodes())
        elif isinstance(n, list | tuple):
            stack.extend(n)


def like_to_regex(pattern: str, *, nocase: bool = False) -> re.Pattern[str]:
    """Compile a SQL LIKE pattern (``%`` any run, ``_`` one char, ``\\`` escape)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL if nocase else re.DOTALL)


class _FrameEvaluator(GeoPandasEvaluator):
    """pygeofilter's GeoPandas evaluator with strict attributes and SQL LIKE semantics."""

    def __init__(self, df: gpd.GeoDataFrame, columns: Mapping[str, str]) -> None:
        super().__init__(df, None, {})
        self.columns = columns

    @handle(ast.Attribute)
    def attribute(self, node: ast.Attribute) -> Any:
        name = self.columns.get(node.name)
        if name is None:
            raise InvalidQueryError(
                f"filter: unknown property '{node.name}'; expected one of "
                f"{', '.join(sorted(self.columns))}."
            )
        return self.df[name]

    @handle(ast.Like)
    def like(self, node: ast.Like, lhs: pd.Series) -> pd.Series:
        rx = like_to_regex(str(node.pattern), nocase=bool(node.nocase))
        res = lhs.astype("string").fillna("").str.fullmatch(rx).astype(bool)
        return ~res if node.not_ else res

    @handle(ast.SpatialDistancePredicate, subclasses=True)
    def spatial_distance(self, node: Any, lhs: Any, rhs: Any) -> pd.Series:
        raise InvalidQueryError(
            "filter: distance predicates are not supported; use /query/radius instead."
        )

    @handle(values.Geometry)
    def geometry(self, node: values.Geometry) -> Any:
        return shapely.geometry.shape(node.geometry)


def frame_mask(gdf: gpd.GeoDataFrame, node: ast.Node) -> pd.Series:
    """Boolean mask of the rows of ``gdf`` that satisfy the CQL2 AST ``node``."""
    columns = {c: c for c in gdf.columns if c != gdf.geometry.name}
    for g in _GEOMETRY_NAMES:
        columns[g] = gdf.geometry.name
    try:
        res = _FrameEvaluator(gdf, columns).evaluate(node)
    except InvalidQueryError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, NotImplementedError,
            RecursionError, shapely.errors.GEOSException) as exc:
        raise InvalidQueryError(f"filter: cannot be evaluated ({exc}).") from exc
    if isinstance(res, bool):
        return pd.Series(res, index=gdf.index)
    if not isinstance(res, pd.Series):
        raise InvalidQueryError("filter: expected a boolean condition, e.g. \"verdict = 'x'\".")
    return res.fillna(False).astype(bool)


def sql_filter(node: ast.Node, columns: Mapping[str, Any]) -> Any:
    """SQLAlchemy boolean expression for the CQL2 AST ``node``.

    Parameters
    ----------
    node
        Parsed CQL2.
    columns
        Property name -> SQLAlchemy column (include ``geometry``).
    """
    from pygeofilter.backends.sqlalchemy.evaluate import SQLAlchemyFilterEvaluator

    class _Sql(SQLAlchemyFilterEvaluator):
        @handle(ast.Attribute)
        def attribute(self, n: ast.Attribute) -> Any:
            col = self.field_mapping.get(n.name)
            if col is None:
                raise InvalidQueryError(
                    f"filter: unknown property '{n.name}'; expected one of "
                    f"{', '.join(sorted(self.field_mapping))}."
                )
            return col

        @handle(ast.Like)
        def like(self, n: ast.Like, lhs: Any) -> Any:
            pat = str(n.pattern)
            expr = lhs.ilike(pat, escape="\\") if n.nocase else lhs.like(pat, escape="\\")
            return ~expr if n.not_ else expr

        @handle(ast.Function)
        def function(self, n: ast.Function, *args: Any) -> Any:
            raise InvalidQueryError(f"filter: unknown function '{n.name}'.")

        @handle(ast.SpatialDistancePredicate, subclasses=True)
        def spatial_distance(self, n: Any, lhs: Any, rhs: Any) -> Any:
            raise InvalidQueryError(
                "filter: distance predicates are not supported; use /query/radius instead."
            )

        @handle(ast.TemporalPredicate, subclasses=True)
        def temporal(self, n: Any, lhs: Any, rhs: Any) -> Any:
            raise InvalidQueryError("filter: temporal predicates are not supported.")

    try:
        return _Sql(dict(columns), False).evaluate(node)
    except InvalidQueryError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, NotImplementedError,
            RecursionError) as exc:
        raise InvalidQueryError(f"filter: cannot be evaluated ({exc}).") from exc
