#!/usr/bin/env bash
# Rolling update of Mission Control: one API instance at a time, so the balancer always has
# one that answers, and nothing a client was told is lost.
#
#   deploy.sh [--env-file FILE] [INSTANCE...]      (instances default to: api1 api2)
#
# For each instance in turn: every other instance must answer /readyz; then it is stopped
# with SIGTERM (the server stops accepting, closes its sockets with 1001 so that clients
# reconnect — through the balancer, to an instance still up — and finishes its requests
# within SHUTDOWN_TIMEOUT_SECONDS); the new version is started; and the next instance is
# touched only once this one answers /readyz. Migrations run once, first: a release's
# migrations must work with the release before it (both run during the update).
#
# DEPLOY_DRIVER=compose (default), on the docker-compose.prod.yml host:
#   COMPOSE_FILE   [default: deploy/aliyun/docker-compose.prod.yml]
#   ENV_FILE       [default: deploy/aliyun/env/.env.production]
#   MC_IMAGE       the image to roll out (as the compose file reads it); pulled first
#   Also restarts the `consumer` last (its events wait in the stream meanwhile).
# DEPLOY_DRIVER=commands, anything else (systemd units, …); `{}` is the instance's name:
#   DEPLOY_STOP_CMD    stops it with SIGTERM and returns once it exited
#                      (e.g. systemctl stop mission-control@{})
#   DEPLOY_START_CMD   starts the new version (e.g. systemctl start mission-control@{})
#   DEPLOY_READY_URL   its readiness URL (e.g. http://127.0.0.1:800{}/readyz with instances 1 2)
#   DEPLOY_MIGRATE_CMD run once before the first instance (optional; e.g. mission-control migrate)
# Both: DEPLOY_READY_TIMEOUT seconds for an instance to become ready [default: 120];
#       DEPLOY_SETTLE_SECONDS to wait after one is ready, before the next [default: 5]: longer
#       than nginx's fail_timeout (3 s in deploy/*nginx.conf), so that nginx uses the new
#       instance again before the other one goes; else it answers 502 "no live upstreams".
set -euo pipefail

usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; }
say() { printf '[deploy %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
ENV_FILE=${ENV_FILE:-$ROOT/deploy/aliyun/env/.env.production}
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  --env-file) [ -n "${2:-}" ] || die "--env-file needs a file"; ENV_FILE=$2; shift 2 ;;
esac
INSTANCES=("$@")
[ "${#INSTANCES[@]}" -gt 0 ] || INSTANCES=(api1 api2)

DRIVER=${DEPLOY_DRIVER:-compose}
COMPOSE_FILE=${COMPOSE_FILE:-$ROOT/deploy/aliyun/docker-compose.prod.yml}
READY_TIMEOUT=${DEPLOY_READY_TIMEOUT:-120}
SETTLE=${DEPLOY_SETTLE_SECONDS:-5}

for_instance() { printf '%s' "${1//\{\}/$2}"; }

compose() { docker compose -f "$COMPOSE_FILE" --env-file "$ENV_FILE" "$@"; }

# Whether the instance answers /readyz now.
ready() {
  local name=$1
  case "$DRIVER" in
    compose)
      local id
      id=$(compose ps -q "$name" 2>/dev/null) && [ -n "$id" ] \
        && [ "$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null)" = healthy ]
      ;;
    commands) curl -fs -o /dev/null --max-time 3 "$(for_instance "$DEPLOY_READY_URL" "$name")" ;;
  esac
}

wait_ready() {
  local name=$1 deadline=$((SECONDS + READY_TIMEOUT))
  until ready "$name"; do
    [ "$SECONDS" -lt "$deadline" ] || die "$name is not ready after ${READY_TIMEOUT} s; stopping here (the others still serve)"
    sleep 1
  done
}

stop() {
  case "$DRIVER" in
    # -t: Docker's SIGKILL only after the server's own drain (SHUTDOWN_TIMEOUT_SECONDS, 30).
    compose) compose stop -t 35 "$1" ;;
    commands) sh -c "$(for_instance "$DEPLOY_STOP_CMD" "$1")" ;;
  esac
}

start() {
  case "$DRIVER" in
    # nginx resolved the old container's address when it started: a reload resolves again.
    compose) compose up -d --no-deps "$1" && wait_ready "$1" && compose exec -T nginx nginx -s reload ;;
    commands) sh -c "$(for_instance "$DEPLOY_START_CMD" "$1")" ;;
  esac
}

case "$DRIVER" in
  compose)
    [ -f "$COMPOSE_FILE" ] || die "no compose file at $COMPOSE_FILE"
    [ -f "$ENV_FILE" ] || die "no env file at $ENV_FILE"
    say "pulling ${MC_IMAGE:-the configured image}"
    compose pull "${INSTANCES[@]}" consumer migrate
    say "migrating"
    compose run --rm migrate
    ;;
  commands)
    : "${DEPLOY_STOP_CMD:?DEPLOY_STOP_CMD is required with DEPLOY_DRIVER=commands}"
    : "${DEPLOY_START_CMD:?DEPLOY_START_CMD is required with DEPLOY_DRIVER=commands}"
    : "${DEPLOY_READY_URL:?DEPLOY_READY_URL is required with DEPLOY_DRIVER=commands}"
    if [ -n "${DEPLOY_MIGRATE_CMD:-}" ]; then
      say "migrating"
      sh -c "$DEPLOY_MIGRATE_CMD"
    fi
    ;;
  *) die "DEPLOY_DRIVER must be compose or commands, not $DRIVER" ;;
esac

for name in "${INSTANCES[@]}"; do
  for other in "${INSTANCES[@]}"; do
    [ "$other" = "$name" ] || ready "$other" || die "$other is not ready; not stopping $name (it would leave nobody serving)"
  done
  started=$SECONDS
  say "$name: draining (SIGTERM)"
  stop "$name"
  say "$name: stopped after $((SECONDS - started)) s; starting the new version"
  start "$name"
  wait_ready "$name"
  say "$name: ready $((SECONDS - started)) s after the drain began"
  sleep "$SETTLE"
done

if [ "$DRIVER" = compose ]; then
  say "consumer: restarting"
  compose stop -t 35 consumer
  compose up -d --no-deps consumer
fi
say "done: ${INSTANCES[*]} updated"
