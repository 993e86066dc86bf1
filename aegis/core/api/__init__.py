"""The REST API's plumbing, shared by every app's viewsets (CONTRACT §2–§6).

- `authentication`: the `X-API-Key` header and staff sessions, and the actor of a request;
- `permissions`: one class enforcing the scope each view declares;
- `throttles`: per client IP when anonymous, per key otherwise;
- `parsers`, `fields`, `serializers`: strict JSON in, strict types;
- `exceptions`, `middleware`: one error body for everything under `/api`;
- `pagination`, `schema`: page numbers for resources, cursors for the audit trail, OpenAPI.
"""
