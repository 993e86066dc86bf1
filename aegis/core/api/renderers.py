from __future__ import annotations

from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer


class BrowsableAPIOrJSONErrorsRenderer(BrowsableAPIRenderer):
    """The browsable API for staff in a browser, except that errors stay JSON: under /api
    every 4xx/5xx body is the contract's JSON error, whatever the Accept header."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None and response.status_code >= 400:
            json_renderer = JSONRenderer()
            response["Content-Type"] = f"{json_renderer.media_type}; charset=utf-8"
            return json_renderer.render(data, "application/json", renderer_context)
        return super().render(data, accepted_media_type, renderer_context)
