"""The links of /openapi.json: each resolves against the real route table."""

from __future__ import annotations

import re

from toombos_edge import openapi
from toombos_edge.openapi_links import LINKS
from toombos_edge.routes import ROUTES


def test_every_link_joins_two_operations_of_the_table() -> None:
    document = openapi.build(ROUTES)
    ids = {op["operationId"]: (method.upper(), path)
           for path, item in document["paths"].items() for method, op in item.items()}
    found = [(name, link, status) for item in document["paths"].values()
             for op in item.values() for status, response in op["responses"].items()
             for name, link in response.get("links", {}).items()]
    assert len(found) == len(LINKS)  # none left out for a route the table lacks
    for _name, link, _status in found:
        method, path = ids[link["operationId"]]
        [(parameter, expression)] = link["parameters"].items()
        assert parameter in re.findall(r"\{(\w+)\}", path), (method, path)
        assert expression.startswith("$response.body#/")


def test_a_smaller_table_builds_without_the_links_it_lacks() -> None:
    document = openapi.build([r for r in ROUTES if r.path != "/api/documents"])
    assert "/api/documents" not in document["paths"]
    assert document["paths"]["/api/v1/documents"]["post"]["responses"]["201"]["links"]
