#!/usr/bin/env bash
# Backups of Mission Control's PostgreSQL database to OSS (or any S3-compatible store).
#
#   backup.sh backup                      pg_dump | gzip → ${BACKUP_S3_URI}/db/mission_control_YYYYMMDD_HHMMSS.sql.gz,
#                                         then deletes backups older than BACKUP_RETENTION_DAYS
#   backup.sh list                        the backups there, oldest first
#   backup.sh restore NAME TARGET_URL     restores backup NAME (as listed) into the database at
#                                         TARGET_URL, which must exist and hold no tables yet
#
# Settings (environment, or the env file given with --env-file before the command):
#   DATABASE_URL            the database to back up (or RDS_HOST, RDS_PORT, RDS_USER,
#                           RDS_PASSWORD, RDS_DATABASE, as docker-compose.prod.yml takes them)
#   BACKUP_S3_URI           where backups go, e.g. s3://mc-backups (a prefix may follow the bucket)
#   BACKUP_S3_ENDPOINT      the S3-compatible endpoint; for OSS e.g. https://oss-cn-hangzhou.aliyuncs.com
#                           (unset: AWS S3)
#   BACKUP_RETENTION_DAYS   backups older than this are deleted after a backup [default: 14]
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION   the store's credentials
#   AWS_CLI                 the aws CLI to use [default: aws]
#
# Needs pg_dump/psql of the server's major version or newer, gzip and the aws CLI (v1 or v2).
# Cron, every night at 03:00:  0 3 * * * /opt/mission-control/deploy/aliyun/scripts/backup.sh \
#   --env-file /opt/mission-control/deploy/aliyun/env/.env.production backup >>/var/log/mc-backup.log 2>&1
set -euo pipefail

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
say() { printf '[backup %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

if [ "${1:-}" = --env-file ]; then
  [ -f "${2:-}" ] || die "--env-file: no such file: ${2:-}"
  set -a
  # shellcheck disable=SC1090
  . "$2"
  set +a
  shift 2
fi

AWS_CLI=${AWS_CLI:-aws}
RETENTION_DAYS=${BACKUP_RETENTION_DAYS:-14}
NAME_PATTERN='^mission_control_[0-9]{8}_[0-9]{6}\.sql\.gz$'

aws_s3() {
  if [ -n "${BACKUP_S3_ENDPOINT:-}" ]; then
    "$AWS_CLI" --endpoint-url "$BACKUP_S3_ENDPOINT" s3 "$@"
  else
    "$AWS_CLI" s3 "$@"
  fi
}

# The folder the backups live in: ${BACKUP_S3_URI}/db/
backups_uri() {
  [ -n "${BACKUP_S3_URI:-}" ] || die "BACKUP_S3_URI is not set (e.g. s3://mc-backups)"
  case "$BACKUP_S3_URI" in s3://?*) ;; *) die "BACKUP_S3_URI must look like s3://bucket[/prefix]" ;; esac
  printf '%s/db/' "${BACKUP_S3_URI%/}"
}

urlencode() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

source_url() {
  if [ -n "${DATABASE_URL:-}" ]; then
    # psql and pg_dump take postgres:// and postgresql://, not SQLAlchemy's postgresql+driver://.
    printf '%s' "$DATABASE_URL" | sed -E 's#^postgresql\+[a-z0-9]+://#postgresql://#'
  elif [ -n "${RDS_HOST:-}" ]; then
    : "${RDS_USER:?RDS_USER is not set}" "${RDS_PASSWORD:?RDS_PASSWORD is not set}" "${RDS_DATABASE:?RDS_DATABASE is not set}"
    printf 'postgresql://%s:%s@%s:%s/%s' "$(urlencode "$RDS_USER")" "$(urlencode "$RDS_PASSWORD")" \
      "$RDS_HOST" "${RDS_PORT:-5432}" "$RDS_DATABASE"
  else
    die "set DATABASE_URL (or RDS_HOST, RDS_USER, RDS_PASSWORD, RDS_DATABASE)"
  fi
}

# Backup names, oldest first (the name carries the UTC time it was taken).
names() {
  aws_s3 ls "$(backups_uri)" | awk '{print $NF}' | grep -E "$NAME_PATTERN" | sort || true
}

backup() {
  local uri url name started
  uri=$(backups_uri)
  url=$(source_url)
  name="mission_control_$(date -u +%Y%m%d_%H%M%S).sql.gz"
  started=$(date +%s)
  say "dumping to ${uri}${name}"
  # Plain SQL without owners or grants: it restores into any empty database, whoever owns it.
  # pipefail: a failed dump fails the upload's pipeline, and the partial object is removed.
  if ! pg_dump --no-owner --no-privileges --dbname="$url" | gzip -6 | aws_s3 cp --only-show-errors - "${uri}${name}"; then
    aws_s3 rm --only-show-errors "${uri}${name}" >/dev/null 2>&1 || true
    die "backup failed; nothing kept"
  fi
  aws_s3 ls "${uri}${name}" >/dev/null || die "the upload of ${name} is not listed"
  say "stored ${uri}${name} in $(($(date +%s) - started)) s"
  prune
}

# Deletes backups older than RETENTION_DAYS, by the time in their names; never the newest.
prune() {
  local uri cutoff newest name
  uri=$(backups_uri)
  [[ "$RETENTION_DAYS" =~ ^[0-9]+$ ]] || die "BACKUP_RETENTION_DAYS must be a whole number of days"
  cutoff=$(date -u -d "-${RETENTION_DAYS} days" +%Y%m%d_%H%M%S)
  newest=$(names | tail -n 1)
  names | while read -r name; do
    [ "$name" != "$newest" ] || continue
    local taken=${name#mission_control_}
    taken=${taken%.sql.gz}
    if [[ "$taken" < "$cutoff" ]]; then
      say "deleting ${name} (older than ${RETENTION_DAYS} days)"
      aws_s3 rm --only-show-errors "${uri}${name}"
    fi
  done
}

restore() {
  local name=${1:-} target=${2:-} uri tables
  [ -n "$name" ] && [ -n "$target" ] || die "usage: backup.sh restore NAME TARGET_DATABASE_URL"
  [[ "$name" =~ $NAME_PATTERN ]] || die "not a backup name: $name (see backup.sh list)"
  target=$(printf '%s' "$target" | sed -E 's#^postgresql\+[a-z0-9]+://#postgresql://#')
  uri=$(backups_uri)
  tables=$(psql "$target" -Atqc "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") \
    || die "cannot connect to the target database"
  # Never over live data: a restore is into a new, empty database, which then replaces the old.
  [ "$tables" = 0 ] || die "the target database already has $tables tables; restore into an empty one"
  say "restoring ${uri}${name}"
  # One transaction: a restore that fails leaves the target as empty as it was.
  # COMMENT ON EXTENSION is for the extension's owner only: on RDS the restoring account
  # is not, and the comments are the extensions' own anyway.
  aws_s3 cp --only-show-errors "${uri}${name}" - | gunzip | grep -v '^COMMENT ON EXTENSION ' \
    | psql "$target" --quiet --no-psqlrc --single-transaction -v ON_ERROR_STOP=1 >/dev/null
  say "restored $(psql "$target" -Atqc "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") tables"
}

case "${1:-}" in
  backup) backup ;;
  list) names ;;
  prune) prune ;;
  restore) shift; restore "$@" ;;
  -h | --help | help) usage ;;
  *) usage; exit 2 ;;
esac
