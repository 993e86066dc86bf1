#!/usr/bin/env bash
# Start one AEGIS License Server instance: wait for the database, migrate (under a lock, so
# several instances may start at once), collect static files if the image has not, then
# replace this shell with gunicorn (signals reach it directly).
#
# The same script runs in the Docker image and on a plain host (it uses .venv when present):
#   deploy/entrypoint.sh                  # serve (gunicorn.conf.py reads PORT, WEB_CONCURRENCY, ...)
#   deploy/entrypoint.sh manage.py CMD    # run a management command in the same environment
#
# RUN_MIGRATIONS=false skips the migration step (when a release job migrates instead).
# DB_WAIT_SECONDS (default 60) bounds the wait for the database.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi

# prometheus_client writes into this directory from every process that has it set.
if [[ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]]; then
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi

if [[ "${1:-}" == "manage.py" ]]; then
  shift
  exec "$PYTHON" manage.py "$@"
fi

if [[ "${RUN_MIGRATIONS:-true}" == "true" ]]; then
  "$PYTHON" manage.py migrate_safely --wait "${DB_WAIT_SECONDS:-60}"
fi

# The image collects static files at build time. Elsewhere collect them once: production
# serves hashed names from a manifest, other environments the plain files. (Django decides:
# ENVIRONMENT may come from .env rather than from this shell.)
if ! "$PYTHON" - <<'PY'
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis.settings")
django.setup()
from django.conf import settings

marker = "staticfiles.json" if settings.IS_PRODUCTION else "admin"
sys.exit(0 if (settings.STATIC_ROOT / marker).exists() else 1)
PY
then
  "$PYTHON" manage.py collectstatic --noinput --verbosity 0
fi

exec "$PYTHON" -m gunicorn -c gunicorn.conf.py
