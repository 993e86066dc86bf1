# AEGIS License Server — production image (a first version; see docs/ for deployment).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    ENVIRONMENT=production \
    KEYS_DIR=/app/keys

WORKDIR /app
RUN groupadd --system aegis && useradd --system --gid aegis --home /app aegis

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# collectstatic needs settings but no secrets or keys: give it throwaway values at build time.
RUN ENVIRONMENT=development API_SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && mkdir -p /app/keys && chown -R aegis:aegis /app/keys

USER aegis
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"
CMD ["sh", "-c", "python manage.py migrate --noinput && exec gunicorn aegis.wsgi:application --bind 0.0.0.0:8000 --workers ${WEB_CONCURRENCY:-2}"]
