#!/usr/bin/env bash
# Benchmark (not a test): the hot paths of issue 28 back to back, against our server and,
# when REF_URL is given, the reference server, then a table of the ratios. Also runs
# pgbench with the SQL our server sends for each read, so each row can be read against
# what PostgreSQL alone does on this box (the "ceiling").
#   benches/compare.sh                                   # ours only (a fresh release server)
#   REF_URL=http://127.0.0.1:8000 REF_TOKEN=... REF_GATEWAY_ID=... benches/compare.sh
# REF_GATEWAY_ID names a gateway of the reference's organization (with its main agent), to
# hang its boards on.
# Settings: CONNS (64), DURATION (15s), BOARDS (20), TASKS (200), WRITE_BOARDS (13),
# HEARTBEAT_GATEWAYS (500), SUBSCRIBERS (200), H5_RATE (300), H5_GOAL_RATE (1000: the rate at
# which PostgreSQL alone runs an H5 round trip's statements); POOL (16) and WORKERS (2)
# size our server as the reference's 2 uvicorn workers are sized.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-64}
DURATION=${DURATION:-15s}
BOARDS=${BOARDS:-20}
TASKS=${TASKS:-200}
WRITE_BOARDS=${WRITE_BOARDS:-13}
HEARTBEAT_GATEWAYS=${HEARTBEAT_GATEWAYS:-500}
SUBSCRIBERS=${SUBSCRIBERS:-200}
H5_RATE=${H5_RATE:-300}
H5_GOAL_RATE=${H5_GOAL_RATE:-1000}
POOL=${POOL:-16}
WORKERS=${WORKERS:-2}
INSTANCES=1
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789
EXTRA_ENV="DB_POOL_SIZE=$POOL HTTP_WORKERS=$WORKERS H5_LOGIN_MAX_FAILURES_PER_IP=100000"

command -v wrk >/dev/null 2>&1 || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }
# shellcheck source=benches/servers.sh
. benches/servers.sh
ours=${servers%%,*}
DATABASE_URL="${MC_PG_ADMIN_URL%/*}/$db"
results=$(mktemp)
trap 'rm -f "$results"; cleanup' EXIT

api() { # api BASE TOKEN METHOD PATH [BODY] → the response body
  curl -fsS -X "$3" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
    ${5:+--data "$5"} "$1$4"
}

# seed BASE TOKEN GATEWAY_ID → the board ids, one per line: BOARDS boards of TASKS tasks
# each, through the API (the same data on both servers).
seed() {
  local base=$1 token=$2 gateway=$3 run i board
  run=$(date +%s%N | tail -c 7)
  for i in $(seq 1 "$BOARDS"); do
    board=$(api "$base" "$token" POST /api/v1/boards \
      "{\"name\":\"Bench $run $i\",\"slug\":\"bench-$run-$i\",\"description\":\"bench\",\"gateway_id\":\"$gateway\"}" | jq -r .id)
    echo "$board"
    seq 1 "$TASKS" | xargs -P 8 -I{} curl -fsS -o /dev/null -X POST \
      -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
      --data "{\"title\":\"Task {}\",\"priority\":\"medium\"}" "$base/api/v1/boards/$board/tasks"
  done
}

# wrk_row NAME BASE TOKEN PATH [LUA BOARD_IDS] → "NAME<TAB>req/s<TAB>p99 ms<TAB>non-2xx"
wrk_row() {
  local name=$1 base=$2 token=$3 path=$4 lua=${5:-} boards=${6:-} out
  if [ -n "$lua" ]; then
    out=$(BOARD_IDS=$boards TOKEN=$token wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$lua" "$base$path")
  else
    out=$(wrk -t2 -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $token" "$base$path")
  fi
  awk -v name="$name" '
    /Requests\/sec/ { rps = $2 }
    /^ +99%/ { p = $2; if (p ~ /us$/) { sub(/us$/, "", p); p /= 1000 } else if (p ~ /ms$/) { sub(/ms$/, "", p) } else if (p ~ /s$/) { sub(/s$/, "", p); p *= 1000 }; p99 = p }
    /Non-2xx/ { bad = $NF }
    END { printf "%s\t%.0f\t%.1f\t%d\n", name, rps, p99, bad }' <<<"$out"
}

# scenarios LABEL BASE TOKEN GATEWAY_ID PIDS → rows "LABEL<TAB>scenario<TAB>rate<TAB>p99<TAB>errors"
scenarios() {
  local label=$1 base=$2 token=$3 gateway=$4 pid_list=$5 boards first writes
  # read_board stays set (global): the PostgreSQL ceilings read the same board.
  echo "== $label: seeding $BOARDS boards x $TASKS tasks" >&2
  boards=$(seed "$base" "$token" "$gateway")
  # Writes go to the first boards; the task page reads the last one, which nothing writes.
  first=$(head -1 <<<"$boards")
  read_board=$(tail -1 <<<"$boards")
  writes=$(head -"$WRITE_BOARDS" <<<"$boards" | paste -sd,)
  {
    wrk_row "GET /healthz" "$base" "$token" /healthz
    wrk_row "GET /api/v1/boards ($BOARDS boards)" "$base" "$token" /api/v1/boards
    wrk_row "GET tasks?limit=20 ($TASKS tasks)" "$base" "$token" "/api/v1/boards/$read_board/tasks?limit=20"
    wrk_row "POST task, one board" "$base" "$token" /api/v1/boards benches/lua/post-task.lua "$first"
    wrk_row "POST task, $WRITE_BOARDS boards" "$base" "$token" /api/v1/boards benches/lua/post-task.lua "$writes"
    target/release/mc-load heartbeat --servers "$base" --token "$token" --pid "$pid_list" \
      --gateways "$HEARTBEAT_GATEWAYS" --concurrency "$CONNS" --duration-secs "${DURATION%s}" 2>/dev/null |
      jq -sr '.[0] | "heartbeats, \(.gateways) gateways\t\(.accepted_per_second|floor)\t\(.p99_ms*10|floor/10)\t\(.errors)"'
    target/release/mc-load board --servers "$base" --token "$token" --pid "$pid_list" \
      --subscribers "$SUBSCRIBERS" --rate 5 --duration-secs "${DURATION%s}" 2>/dev/null |
      jq -sr '.[0] | "board fan-out, \(.subscribers) subscribers (p99 of last delivery)\t\(.deliveries)\t\(.last_delivery_p99_ms*10|floor/10)\t\(.missing)"'
    python3 benches/ws-close.py "${base##*:}" /ws/h5/chat 20 |
      awk '{ printf "WebSocket close, until the connection is closed (p50; max as p99)\t%s\t%s\t0\n", $1, $2 }'
  } | sed "s/^/$label\t/" >>"$results"
}

api "$ours" "$TOKEN" GET /api/v1/users/me >/dev/null # provisions the organization
# A gateway with its main agent (boards need one), by SQL: nothing to dial.
gateway=$(psql "$DATABASE_URL" -Atq -c "WITH g AS (INSERT INTO gateways (id, organization_id, name) \
    SELECT gen_random_uuid(), active_organization_id, 'bench' FROM users \
    WHERE clerk_user_id = 'local-auth-user' RETURNING id, organization_id), \
  a AS (INSERT INTO agents (id, organization_id, board_id, gateway_id, name) \
    SELECT gen_random_uuid(), organization_id, NULL, id, 'main' FROM g) \
  SELECT id FROM g")
scenarios ours "$ours" "$TOKEN" "$gateway" "$pidlist"
# The rule engine evaluates the events of every task written above: H5 chat is measured
# once it has caught up (a minute at most), not while it competes with it.
for _ in $(seq 1 60); do
  [ "$(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM agent_events WHERE evaluated_at IS NULL")" = 0 ] && break
  sleep 1
done
echo "== ours: H5 chat, $H5_RATE msg/s" >&2
target/release/mc-load h5 --servers "$ours" --token "$TOKEN" --pid "$pidlist" --users 200 --gateways 4 \
  --rate "$H5_RATE" --duration-secs "${DURATION%s}" 2>/dev/null |
  jq -sr '.[0] | "ours\tH5 chat, \(.target_rate) msg/s (round trip)\t\(.achieved_rate|floor)\t\(.rtt_p99_ms*10|floor/10)\t\(.lost)"' >>"$results"
if [ -n "${REF_URL:-}" ]; then
  scenarios reference "$REF_URL" "${REF_TOKEN:?REF_TOKEN: the reference admin token}" \
    "${REF_GATEWAY_ID:?REF_GATEWAY_ID: a gateway of the reference organization}" ""
fi

# The PostgreSQL ceiling of each path: the SQL our server sends, run by pgbench alone
# (the same connections as our pool, as fast as it goes), prepared once per connection as
# our server runs it.
pg_row() { # pg_row NAME SCRIPT → "ceiling<TAB>NAME<TAB>tps"
  pgbench -n -M prepared -c "$POOL" -j 2 -T "${DURATION%s}" -f "$2" "$DATABASE_URL" 2>/dev/null |
    awk -v name="$1" '/^tps/ { printf "ceiling\t%s\t%.0f\t\t\n", name, $3 }' >>"$results"
}
# pg_at_rate NAME SCRIPT RATE → "ceiling<TAB>NAME at RATE/s<TAB>tps<TAB>p99 ms": the latency
# of the same SQL alone at a given rate (what a goal in milliseconds can be held against).
pg_at_rate() {
  local logs
  logs=$(mktemp -d)
  (cd "$logs" && pgbench -n -M prepared -c "$((POOL * 2))" -j 2 -T "${DURATION%s}" -R "$3" -l \
    --log-prefix=tx -f "$OLDPWD/$2" "$DATABASE_URL" >/dev/null 2>&1) || true
  cat "$logs"/tx* 2>/dev/null | python3 -c '
import sys
name, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
v = sorted(int(l.split()[2]) for l in sys.stdin if l.strip())  # microseconds per transaction
if v:
    p50, p99 = v[len(v) // 2] / 1000, v[int(len(v) * .99)] / 1000
    print(f"ceiling\t{name} at {rate}/s (p50 {p50:.1f} ms)\t{len(v) / seconds:.0f}\t{p99:.1f}\t")
' "$1" "$3" "${DURATION%s}" >>"$results"
  rm -rf "$logs"
}
board=$read_board
org=$(psql "$DATABASE_URL" -Atc "SELECT organization_id FROM boards WHERE id = '$board'")
for sql in benches/sql/*.sql; do
  sed "s/:board/'$board'/g; s/:org/'$org'/g; s/:gateway/'$gateway'/g" "$sql" >"$results.sql"
  pg_row "$(head -1 "$sql" | sed 's/^-- //')" "$results.sql"
done
# The H5 goal is a latency at a rate: the round trip's statements alone at that rate.
pg_at_rate "H5 round trip (benches/sql/5-h5-round-trip.sql)" benches/sql/5-h5-round-trip.sql "$H5_GOAL_RATE"
rm -f "$results.sql"

echo
python3 - "$results" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
ours = {r[1]: r for r in rows if r[0] == "ours"}
ref = {r[1]: r for r in rows if r[0] == "reference"}
print("| scenario | reference rate | ours rate | ours/reference | reference p99 ms | ours p99 ms | ours errors/missing/lost |")
print("|---|---|---|---|---|---|---|")
for name, o in ours.items():
    r = ref.get(name)
    # Rates: ours over the reference's; a time (the WebSocket close): the reference's over ours.
    faster = (lambda a, b: b / a) if name.startswith("WebSocket close") else (lambda a, b: a / b)
    ratio = f"{faster(float(o[2]), float(r[2])):.1f}×" if r and float(r[2]) and float(o[2]) else "—"
    print(f"| {name} | {r[2] if r else '—'} | {o[2]} | {ratio} | {r[3] if r else '—'} | {o[3]} | {o[4]} |")
print()
print("| PostgreSQL alone (pgbench, the statements our server sends) | transactions/s | p99 ms |")
print("|---|---|---|")
for r in rows:
    if r[0] == "ceiling":
        print(f"| {r[1]} | {r[2]} | {r[3] or '—'} |")
PY
