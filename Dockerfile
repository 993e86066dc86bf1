# AEGIS License Server — production image.
#   docker build -t aegis-license-server .
#   docker run --env-file .env -v aegis-keys:/app/keys -p 8000:8000 aegis-license-server
# deploy/docker-compose.prod.yml runs it with PostgreSQL 15 and Redis; see
# docs/deployment-runbook.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# A fixed uid/gid, so files in mounted volumes (keys) have a predictable owner.
RUN groupadd --system --gid 10001 aegis \
    && useradd --system --uid 10001 --gid aegis --home-dir /app --no-create-home aegis

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# Static files are collected at build time with the production storage (hashed names and a
# manifest). collectstatic needs settings but no secret or key: throwaway values, build only.
RUN ENVIRONMENT=production DEBUG=false ALLOWED_HOSTS=build.invalid \
    API_SECRET_KEY=collectstatic-at-build-time-only-never-used-for-anything-else-0123456789 \
    python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p /app/keys /app/run/metrics \
    && chown aegis:aegis /app/keys /app/run /app/run/metrics \
    && chmod 700 /app/keys

ENV ENVIRONMENT=production \
    LOG_FORMAT=json \
    KEYS_DIR=/app/keys \
    PORT=8000 \
    PROMETHEUS_MULTIPROC_DIR=/app/run/metrics

USER aegis
EXPOSE 8000
VOLUME ["/app/keys"]

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "deploy/healthcheck.py"]

# Waits for the database, migrates under a lock, then execs gunicorn (gunicorn.conf.py).
# `docker run IMAGE manage.py <command>` runs a management command instead.
ENTRYPOINT ["deploy/entrypoint.sh"]
