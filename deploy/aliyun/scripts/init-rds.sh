#!/usr/bin/env bash
# Prepares the managed PostgreSQL for Mission Control: creates the extensions the
# schema needs (vector, pg_trgm), then applies the migrations. Safe to run again.
# Run `init-rds.sh --help` for the details.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
COMPOSE_FILE="$ROOT/deploy/aliyun/docker-compose.prod.yml"
ENV_FILE="$ROOT/deploy/aliyun/env/.env.production"
MIGRATE=1

usage() {
  cat <<EOF
Usage: deploy/aliyun/scripts/init-rds.sh [--env-file FILE] [--skip-migrate]

Prepares the PostgreSQL database of a Mission Control deployment:
  1. CREATE EXTENSION IF NOT EXISTS vector; CREATE EXTENSION IF NOT EXISTS pg_trgm;
     (with psql, or with psql from the postgres:16-alpine image when psql is missing);
  2. applies the migrations in schema/: \`mission-control migrate\` when that binary
     is on PATH, else
       docker compose -f deploy/aliyun/docker-compose.prod.yml --env-file FILE run --rm migrate
Both steps are idempotent.

The database comes from DATABASE_URL or, when that is unset, from the variables
docker-compose.prod.yml builds it from: RDS_HOST, RDS_PORT (default 5432),
RDS_USER, RDS_PASSWORD and RDS_DATABASE (user and password are URL-encoded here).
Variables set in the environment win; the missing ones are read from the env file.

Options:
  --env-file FILE   the deployment's env file
                    (default: deploy/aliyun/env/.env.production)
  --skip-migrate    only create the extensions
  -h, --help        show this help

ApsaraDB RDS for PostgreSQL: an extension can only be created by the instance's
privileged account, and only once it is offered for the instance: check the
console's extension (plugin) management page, where vector (pgvector) and pg_trgm
can also be installed into the database; if vector is not offered, upgrade the
instance's minor engine version. When RDS_USER is not the privileged account,
create the extensions first as that account, then run the migrations as RDS_USER:
  DATABASE_URL='postgres://<privileged>:<password>@<host>:5432/<db>' \\
    deploy/aliyun/scripts/init-rds.sh --skip-migrate
  deploy/aliyun/scripts/init-rds.sh
EOF
}

log() { printf '[init-rds] %s\n' "$*" >&2; }
die() { printf '[init-rds] error: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --env-file)
      [ $# -ge 2 ] || die "--env-file needs a file name"
      ENV_FILE=$2
      shift 2
      ;;
    --env-file=*)
      ENV_FILE=${1#--env-file=}
      shift
      ;;
    --skip-migrate)
      MIGRATE=0
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      usage >&2
      die "unknown argument: $1"
      ;;
  esac
done

# The value of NAME in the env file, read as compose reads it: the last assignment
# wins, a quoted value is what is between the quotes, an unquoted one ends before
# a " #" comment, and surrounding blanks are dropped.
env_file_value() {
  local name=$1 line value
  local dq='^"([^"]*)"' sq="^'([^']*)'"
  [ -f "$ENV_FILE" ] || return 0
  line=$(grep -E "^[[:space:]]*(export[[:space:]]+)?${name}=" "$ENV_FILE" | tail -n 1 || true)
  [ -n "$line" ] || return 0
  value=${line#*=}
  value=${value#"${value%%[![:space:]]*}"}
  if [[ $value =~ $dq ]] || [[ $value =~ $sq ]]; then
    value=${BASH_REMATCH[1]}
  else
    value=${value%%[[:space:]]#*}
    value=${value%"${value##*[![:space:]]}"}
  fi
  printf '%s' "$value"
}

# Percent-encodes everything but A-Z a-z 0-9 - _ . ~ (RFC 3986 unreserved).
urlencode() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""), end="")' "$1"
    return
  fi
  local LC_ALL=C
  local s=$1 out='' c i hex
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9._~-]) out+=$c ;;
      *)
        printf -v hex '%%%02X' "'$c"
        out+=$hex
        ;;
    esac
  done
  printf '%s' "$out"
}

# Environment first, then the env file.
setting() {
  local name=$1
  if [ -n "${!name:-}" ]; then
    printf '%s' "${!name}"
  else
    env_file_value "$name"
  fi
}

DATABASE_URL=$(setting DATABASE_URL)
if [ -z "$DATABASE_URL" ]; then
  RDS_HOST=$(setting RDS_HOST)
  RDS_PORT=$(setting RDS_PORT)
  RDS_USER=$(setting RDS_USER)
  RDS_PASSWORD=$(setting RDS_PASSWORD)
  RDS_DATABASE=$(setting RDS_DATABASE)
  missing=()
  for name in RDS_HOST RDS_USER RDS_PASSWORD RDS_DATABASE; do
    [ -n "${!name}" ] || missing+=("$name")
  done
  [ "${#missing[@]}" = 0 ] \
    || die "set DATABASE_URL, or ${missing[*]} (in the environment or in $ENV_FILE); see --help"
  if [ "$(urlencode "$RDS_PASSWORD")" != "$RDS_PASSWORD" ]; then
    log "warning: RDS_PASSWORD has characters other than A-Z a-z 0-9 - _ . ~; this script"
    log "  encodes them, but docker-compose.prod.yml puts the password into DATABASE_URL as"
    log "  it is, so the server would not connect: change the password on the RDS account"
  fi
  DATABASE_URL="postgres://$(urlencode "$RDS_USER"):$(urlencode "$RDS_PASSWORD")@${RDS_HOST}:${RDS_PORT:-5432}/$(urlencode "$RDS_DATABASE")"
fi
export DATABASE_URL

# The server also accepts SQLAlchemy's postgresql+psycopg://; psql does not.
PSQL_URL=$(printf '%s' "$DATABASE_URL" | sed -E 's#^postgresql\+[a-z0-9]+://#postgresql://#')
# Where it goes, without the password.
TARGET=$(printf '%s' "$PSQL_URL" | sed -E 's#^[a-z+]+://([^:@/]*)(:[^@]*)?@#\1@#; s#\?.*$##')

run_psql() {
  if command -v psql >/dev/null 2>&1; then
    psql "$PSQL_URL" -X -q -v ON_ERROR_STOP=1 "$@"
  elif command -v docker >/dev/null 2>&1; then
    # Host networking: the database is reached as from this host (RDS whitelist).
    docker run --rm --network host -e PSQL_URL postgres:16-alpine \
      sh -c 'exec psql "$PSQL_URL" "$@"' psql -X -q -v ON_ERROR_STOP=1 "$@"
  else
    die "neither psql nor docker found: apt-get install postgresql-client"
  fi
}
export PSQL_URL

log "creating extensions vector and pg_trgm in $TARGET"
if ! run_psql -c 'SET client_min_messages TO warning;' \
     -c 'CREATE EXTENSION IF NOT EXISTS vector;' -c 'CREATE EXTENSION IF NOT EXISTS pg_trgm;'; then
  log "could not create the extensions. On ApsaraDB RDS for PostgreSQL:"
  log "  - the account must be the instance's privileged account;"
  log "  - the extension must be offered for the instance (console: extension management;"
  log "    upgrade the minor engine version if vector is missing);"
  log "  - the ECS host must be in the instance's whitelist."
  die "see --help"
fi
versions=$(run_psql -A -t -F ' ' \
  -c "SELECT extname, extversion FROM pg_extension WHERE extname IN ('vector', 'pg_trgm') ORDER BY 1;")
while read -r name version; do
  if [ -n "$name" ]; then log "  $name $version"; fi
done <<<"$versions"
# Knowledge search sets hnsw.iterative_scan, which pgvector has from 0.8.0 on.
vector_version=$(awk '$1 == "vector" { print $2 }' <<<"$versions")
if [ -n "$vector_version" ] \
   && [ "$(printf '%s\n%s\n' 0.8.0 "$vector_version" | sort -V | head -n 1)" != 0.8.0 ]; then
  log "warning: pgvector $vector_version is older than 0.8.0; vector search needs 0.8.0"
  log "  (ALTER EXTENSION vector UPDATE; after upgrading the instance's minor engine version)"
fi

if [ "$MIGRATE" = 0 ]; then
  log "done (migrations skipped)"
  exit 0
fi

if command -v mission-control >/dev/null 2>&1; then
  log "applying migrations with $(command -v mission-control)"
  mission-control migrate
elif command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  [ -f "$ENV_FILE" ] || die "$ENV_FILE not found (docker compose reads the image and RDS_* from it)"
  log "applying migrations with docker compose run --rm migrate"
  # -e DATABASE_URL: the database the extensions were just created in, whatever
  # the env file builds.
  docker compose -f "$COMPOSE_FILE" --env-file "$ENV_FILE" run --rm -e DATABASE_URL migrate
else
  die "neither mission-control on PATH nor docker compose found to run the migrations"
fi
log "done"
