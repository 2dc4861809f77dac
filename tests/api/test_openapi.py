"""The service's OpenAPI document is valid OpenAPI 3.0 (OGC API – Features Part 1)."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from api.ogc import to_openapi_30


def test_openapi_document_validates_as_3_0(loaded_client) -> None:  # noqa: ANN001
    doc = loaded_client.get("/openapi.json").json()
    assert doc["openapi"] == "3.0.3"
    validate(doc)  # raises on any 3.1-only construct
    assert any(p.endswith("/items") for p in doc["paths"])


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"anyOf": [{"type": "number"}, {"type": "null"}], "title": "x"},
         {"type": "number", "title": "x", "nullable": True}),
        ({"type": "number", "exclusiveMinimum": 0}, {"type": "number", "minimum": 0,
                                                     "exclusiveMinimum": True}),
        ({"const": "a"}, {"enum": ["a"]}),
        ({"type": "string", "contentMediaType": "application/octet-stream"},
         {"type": "string", "format": "binary"}),
        ({"anyOf": [{"$ref": "#/c/A"}, {"type": "null"}]},
         {"allOf": [{"$ref": "#/c/A"}], "nullable": True}),
    ],
)
def test_schema_rewrites(schema: dict, expected: dict) -> None:
    assert to_openapi_30(schema) == expected
