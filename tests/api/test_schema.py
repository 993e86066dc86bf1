"""OpenAPI: the schema validates with no warning, and documents every /api/v1 route with its
error responses; the docs pages serve their assets themselves (no CDN)."""

from __future__ import annotations

import re

import pytest
import yaml
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
# The routes an instance calls with its token alone (no API key).
PUBLIC = {
    "/api/v1/licenses/validate",
    "/api/v1/licenses/fingerprint",
    "/api/v1/licenses/activate",
    "/api/v1/licenses/deactivate",
}


def _walk(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def _template(route: str) -> str:
    """`api/v1/^licenses/(?P<pk>[…])/revoke/?$` → `/api/v1/licenses/{id}/revoke`."""
    route = route.replace("^", "").replace("$", "").replace("\\.", ".")
    route = _GROUP.sub(lambda m: "{id}" if m.group(1) == "pk" else f"{{{m.group(1)}}}", route)
    route = route.removesuffix("/?").removesuffix("/")
    route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)  # path() converters
    return "/" + route


def api_v1_routes() -> set[str]:
    return {_template(r) for r in _walk(get_resolver().url_patterns) if r.startswith("api/v1/")}


@pytest.fixture(scope="module")
def schema(tmp_path_factory, django_db_blocker):
    path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    with django_db_blocker.unblock():
        # --fail-on-warn: any warning (an undocumented field, an unknown type) fails.
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def test_every_api_v1_route_is_in_the_schema(schema):
    routes = api_v1_routes()
    assert "/api/v1/licenses/{id}/revoke" in routes  # the walk itself works
    assert routes <= set(schema["paths"]), routes - set(schema["paths"])


def test_protected_operations_document_auth_and_their_errors(schema):
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schema["components"]["securitySchemes"]["ApiKeyAuth"]["description"],
    }
    for path in api_v1_routes() - PUBLIC - {"/api/v1/licenses/revocations"}:
        for method, operation in schema["paths"][path].items():
            responses = operation["responses"]
            assert {"ApiKeyAuth": []} in operation["security"], (method, path)
            assert {"401", "403", "429"} <= set(responses), (method, path)
            assert any(code.startswith("2") for code in responses), (method, path)
            for code in ("401", "403", "429"):
                ref = responses[code]["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Error", (method, path, code)


def test_public_operations_need_no_key(schema):
    for path in sorted(PUBLIC):
        operation = schema["paths"][path]["post"]
        assert operation.get("security") in (None, [], [{}]), operation.get("security")
        assert {"200", "400", "413", "415", "429"} <= set(operation["responses"])


def test_schema_is_served(anon):
    response = anon.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    assert "/api/v1/licenses/validate" in response.json()["paths"]


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_serve_their_own_assets(anon, path):
    response = anon.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/" in html
    assert "cdn" not in html.lower()


@pytest.mark.parametrize("path", ["/api/schema/", "/docs", "/redoc"])
def test_docs_ignore_a_stale_api_key(anon, path):
    anon.credentials(HTTP_X_API_KEY="Abcd1234.stale")
    assert anon.get(path).status_code == 200
