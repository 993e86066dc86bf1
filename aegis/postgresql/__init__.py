"""Django's PostgreSQL backend with rate-limited connection health checks (see base.py)."""
