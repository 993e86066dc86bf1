#!/usr/bin/env bash
# One-command deployment of AEGIS License Server with Docker Compose (API + PostgreSQL 15 +
# Redis). Run it for the first install and for every upgrade:
#
#   ./deploy/deploy.sh
#
# 1. creates .env from .env.example if missing, with generated secrets (never overwrites it);
# 2. builds the image;
# 3. starts PostgreSQL and Redis, applies migrations (under a lock);
# 4. generates the signing key KEY_ID in the `keys` volume if it is missing;
# 5. starts (or restarts) the API and waits until /health answers 200.
#
# Environment: ENV_FILE (default .env), AEGIS_HOSTNAME (the public host name written into a
# new .env; default localhost), HEALTH_TIMEOUT (seconds, default 120).
set -euo pipefail

cd "$(dirname "$0")/.."
ENV_FILE="${ENV_FILE:-.env}"
HEALTH_TIMEOUT="${HEALTH_TIMEOUT:-120}"
# The API container reads the same file (docker-compose.prod.yml: AEGIS_ENV_FILE).
case "$ENV_FILE" in
  /*) AEGIS_ENV_FILE="$ENV_FILE" ;;
  *) AEGIS_ENV_FILE="$PWD/$ENV_FILE" ;;
esac
export AEGIS_ENV_FILE
COMPOSE=(docker compose -f deploy/docker-compose.prod.yml --env-file "$ENV_FILE")

log() { printf '==> %s\n' "$*"; }
die() { printf 'deploy: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null || die "docker is not installed"
docker compose version >/dev/null 2>&1 || die "the docker compose plugin is not installed"

random_token() { head -c 48 /dev/urandom | base64 | tr -d '/+=\n'; }
random_hex() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

# set_var NAME VALUE: replace the line NAME=... in $ENV_FILE, or append it.
set_var() {
  if grep -q "^$1=" "$ENV_FILE"; then
    sed -i "s|^$1=.*|$1=$2|" "$ENV_FILE"
  else
    printf '%s=%s\n' "$1" "$2" >>"$ENV_FILE"
  fi
}
get_var() { grep "^$1=" "$ENV_FILE" | tail -n1 | cut -d= -f2-; }

if [[ ! -f "$ENV_FILE" ]]; then
  log "creating $ENV_FILE from .env.example with generated secrets"
  host="${AEGIS_HOSTNAME:-localhost}"
  (umask 077 && cp .env.example "$ENV_FILE")
  set_var ENVIRONMENT production
  set_var DEBUG false
  set_var API_SECRET_KEY "$(random_token)"
  set_var POSTGRES_PASSWORD "$(random_hex)"
  set_var ALLOWED_HOSTS "$host,localhost,127.0.0.1"
  set_var CSRF_TRUSTED_ORIGINS "https://$host"
  set_var KEY_ID "aegis-$(date +%Y)-01"
  set_var LOG_FORMAT json
  log "review $ENV_FILE (host names, CORS_ORIGINS, ...) and re-run to apply changes"
fi
[[ -n "$(get_var API_SECRET_KEY)" ]] || die "API_SECRET_KEY is empty in $ENV_FILE"
[[ -n "$(get_var POSTGRES_PASSWORD)" ]] || die "POSTGRES_PASSWORD is empty in $ENV_FILE"
KEY_ID="$(get_var KEY_ID)"
[[ -n "$KEY_ID" ]] || die "KEY_ID is empty in $ENV_FILE"

log "building the image"
"${COMPOSE[@]}" build api

log "starting PostgreSQL and Redis"
"${COMPOSE[@]}" up -d --wait db redis

log "applying migrations"
"${COMPOSE[@]}" run --rm --no-deps api manage.py migrate_safely --wait 60

log "signing key $KEY_ID"
"${COMPOSE[@]}" run --rm --no-deps api manage.py generate_keys --key-id "$KEY_ID" --if-missing

log "starting the API"
"${COMPOSE[@]}" up -d api

log "waiting for /health (up to ${HEALTH_TIMEOUT}s)"
deadline=$((SECONDS + HEALTH_TIMEOUT))
until "${COMPOSE[@]}" exec -T api python deploy/healthcheck.py; do
  if ((SECONDS >= deadline)); then
    "${COMPOSE[@]}" logs --tail 50 api >&2 || true
    die "the API did not become healthy in ${HEALTH_TIMEOUT}s"
  fi
  sleep 2
done

bind="$(get_var API_BIND || true)"
port="$(get_var API_PORT || true)"
log "AEGIS License Server is healthy on ${bind:-127.0.0.1}:${port:-8000} (put a TLS proxy in front)"
cat <<MSG
Next steps:
  docker compose -f deploy/docker-compose.prod.yml --env-file $ENV_FILE exec api python manage.py createsuperuser
  docker compose -f deploy/docker-compose.prod.yml --env-file $ENV_FILE exec api python manage.py create_api_key --name erp --scope issuer
Back up the database and the keys volume: docs/deployment-runbook.md
MSG
