"""The base every app builds on: it imports no app (`licensing`, `customers`, `audit`) and
nothing from the project's top (`aegis.settings`, `aegis.urls`, the `aegis` app, ...).

- `exceptions`: the domain errors services raise;
- `db`, `routers`: database helpers and the read-replica router;
- `context`, `middleware`, `logging`, `metrics`: per-request context, logs and counters;
- `actors`, `commands`, `adminkit`: who did it, management-command and back-office helpers;
- `api`: the REST API's plumbing, shared by every app's viewsets.

The contracts in pyproject.toml (`lint-imports`) keep it that way.
"""
