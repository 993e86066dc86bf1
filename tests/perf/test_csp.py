"""aegis.hotpath.CSPMiddleware writes the header django-csp writes, built once for ordinary
responses and by django-csp itself for the rest."""

from __future__ import annotations

import pytest
from csp.constants import NONCE, SELF
from csp.middleware import CSPMiddleware as LibraryCSPMiddleware
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from aegis.hotpath import CSPMiddleware

HEADERS = ("Content-Security-Policy", "Content-Security-Policy-Report-Only")


def answer(middleware_class, *, use_nonce=False, prepare=None, path="/api/v1/x"):
    def view(request):
        response = HttpResponse("{}", content_type="application/json")
        if use_nonce:
            response.content = str(request.csp_nonce).encode()
        if prepare:
            prepare(response)
        return response

    request = RequestFactory().get(path)
    response = middleware_class(view)(request)
    return request, response


def headers(response):
    return {name: response.get(name) for name in HEADERS}


@pytest.mark.parametrize(
    "prepare",
    [
        None,
        lambda r: setattr(r, "_csp_update", {"img-src": ["https://img.example"]}),
        lambda r: setattr(r, "_csp_replace", {"script-src": [SELF]}),
        lambda r: setattr(r, "_csp_exempt", True),
        lambda r: r.__setitem__("Content-Security-Policy", "default-src 'none'"),
    ],
    ids=["plain", "update", "replace", "exempt", "already-set"],
)
def test_the_header_is_django_csps(prepare):
    _, ours = answer(CSPMiddleware, prepare=prepare)
    _, theirs = answer(LibraryCSPMiddleware, prepare=prepare)
    assert headers(ours) == headers(theirs)


def test_a_used_nonce_is_in_the_header():
    _, response = answer(CSPMiddleware, use_nonce=True)
    nonce = response.content.decode()
    assert f"'nonce-{nonce}'" in response["Content-Security-Policy"]


def test_the_nonce_cannot_be_asked_for_after_the_header_is_written():
    request, _ = answer(CSPMiddleware)
    with pytest.raises(Exception, match="not available after the CSP header"):
        str(request.csp_nonce)


def test_new_settings_give_a_new_header():
    middleware = CSPMiddleware(lambda request: HttpResponse())
    first = middleware(RequestFactory().get("/"))["Content-Security-Policy"]
    policy = {"DIRECTIVES": {"default-src": [SELF], "script-src": [SELF, NONCE]}}
    report_only = {"DIRECTIVES": {"default-src": [SELF]}, "EXCLUDE_URL_PREFIXES": ["/skip"]}
    with override_settings(
        CONTENT_SECURITY_POLICY=policy, CONTENT_SECURITY_POLICY_REPORT_ONLY=report_only
    ):
        response = middleware(RequestFactory().get("/"))
        assert response["Content-Security-Policy"] != first
        assert response["Content-Security-Policy-Report-Only"] == "default-src 'self'"
        assert "Content-Security-Policy-Report-Only" not in middleware(
            RequestFactory().get("/skip/x")
        )
    assert middleware(RequestFactory().get("/"))["Content-Security-Policy"] == first
