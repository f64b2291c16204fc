#!/usr/bin/env bash
# Validates the deployment files without Docker:
#   1. compose.yml parses and defines the expected services and wiring;
#   2. deploy/nginx.conf passes `nginx -t`;
#   3. deploy/env.example mentions every setting the server declares.
# Installs PyYAML and nginx when missing (pip / apt-get). Exits non-zero on the
# first failure.
#   deploy/check-configs.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

step() { printf '==> %s\n' "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
fail() { printf '    FAIL: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

TMPDIR_CHECK=$(mktemp -d)
trap 'rm -rf "$TMPDIR_CHECK"' EXIT

apt_install() {
  # Try the cached package lists first; refresh them only if that fails.
  local pkg
  for pkg in "$@"; do
    if DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$pkg" \
         >"$TMPDIR_CHECK/apt.log" 2>&1; then
      return 0
    fi
  done
  as_root apt-get update -qq >"$TMPDIR_CHECK/apt.log" 2>&1 || { tail -n 20 "$TMPDIR_CHECK/apt.log" >&2; return 1; }
  for pkg in "$@"; do
    if DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$pkg" \
         >"$TMPDIR_CHECK/apt.log" 2>&1; then
      return 0
    fi
  done
  tail -n 20 "$TMPDIR_CHECK/apt.log" >&2
  return 1
}

# --- 1. compose.yml ----------------------------------------------------------
step "compose.yml: YAML syntax, services and wiring"
if ! python3 -c 'import yaml' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check pyyaml >/dev/null 2>&1 \
    || apt_install python3-yaml \
    || fail "could not install PyYAML"
fi
python3 - compose.yml <<'PY' || fail "compose.yml"
import os, sys, yaml

path = sys.argv[1]
with open(path) as f:
    doc = yaml.safe_load(f)  # also resolves the x-* anchors and << merges

services = doc.get("services") or {}
errors = []
expected = ["db", "redis", "migrate", "api1", "api2", "nginx"]
missing = [s for s in expected if s not in services]
if missing:
    errors.append(f"missing services: {', '.join(missing)}")
else:
    print(f"    ok: services present: {', '.join(expected)}")

    required_env = ["AUTH_MODE", "LOCAL_AUTH_TOKEN", "DATABASE_URL", "REDIS_URL",
                    "ENVIRONMENT", "H5_JWT_SECRET", "AGENT_TOKEN_KEY", "CORS_ORIGINS", "LOG_FORMAT"]
    for name in ["migrate", "api1", "api2"]:
        svc = services[name]
        env = svc.get("environment") or {}
        absent = [k for k in required_env if k not in env]
        if absent:
            errors.append(f"{name}: environment lacks {', '.join(absent)}")
        if "build" not in svc:
            errors.append(f"{name}: no build")
    for name in ["api1", "api2"]:
        svc = services[name]
        if svc.get("command") != ["serve", "--bind", "0.0.0.0:8000"]:
            errors.append(f"{name}: unexpected command {svc.get('command')!r}")
        deps = svc.get("depends_on") or {}
        want = {"db": "service_healthy", "redis": "service_healthy",
                "migrate": "service_completed_successfully"}
        for dep, cond in want.items():
            got = (deps.get(dep) or {}).get("condition") if isinstance(deps, dict) else None
            if got != cond:
                errors.append(f"{name}: depends_on {dep} should be {cond}, is {got}")
    if services["migrate"].get("command") != ["migrate"]:
        errors.append(f"migrate: unexpected command {services['migrate'].get('command')!r}")
    for name in ["db", "redis"]:
        if "healthcheck" not in services[name]:
            errors.append(f"{name}: no healthcheck (api services wait for service_healthy)")
    for vol in services["nginx"].get("volumes") or []:
        src = str(vol).split(":")[0]
        if src.startswith(".") and not os.path.exists(src):
            errors.append(f"nginx: mounted file {src} does not exist")
    if not errors:
        print("    ok: api1/api2/migrate share the environment; depends_on conditions, "
              "healthchecks and the nginx mount are in place")

for e in errors:
    print(f"    FAIL: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY

# Compose's own validator (interpolation, schema) when the plugin is present;
# a dummy token satisfies the required ${LOCAL_AUTH_TOKEN:?...}.
if docker compose version >/dev/null 2>&1; then
  LOCAL_AUTH_TOKEN=${LOCAL_AUTH_TOKEN:-$(printf '%064d' 0)} docker compose -f compose.yml config -q \
    || fail "docker compose config rejected compose.yml"
  ok "docker compose config accepts compose.yml"
else
  echo "    skipped: docker compose config (plugin not installed)"
fi

# --- 2. deploy/nginx.conf ------------------------------------------------------
step "deploy/nginx.conf: nginx -t"
NGINX=$(command -v nginx || true)
[ -n "$NGINX" ] || [ ! -x /usr/sbin/nginx ] || NGINX=/usr/sbin/nginx
if [ -z "$NGINX" ]; then
  echo "    nginx not found; installing it with apt-get"
  apt_install nginx-light nginx || fail "could not install nginx"
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi

# api1/api2 only resolve on the compose network and nginx -t resolves upstream
# hosts, so test a copy with loopback addresses; everything else is unchanged.
NGINX_TEST_CONF="$TMPDIR_CHECK/nginx.conf"
sed -E -e 's/\bapi1:8000\b/127.0.0.1:8001/g' -e 's/\bapi2:8000\b/127.0.0.1:8002/g' \
  deploy/nginx.conf >"$NGINX_TEST_CONF"
changed=$(diff deploy/nginx.conf "$NGINX_TEST_CONF" | grep -c '^>' || true)
[ "$changed" = 2 ] || fail "expected exactly the two upstream lines api1:8000/api2:8000 to be rewritten, got $changed"
ok "upstreams api1:8000, api2:8000 -> 127.0.0.1:8001, 127.0.0.1:8002 in a temporary copy"
# -e stderr: do not touch the compiled-in default error log while testing.
status=0
out=$(as_root "$NGINX" -t -e stderr -c "$NGINX_TEST_CONF" 2>&1) || status=$?
printf '%s\n' "$out" | sed 's/^/    /'
[ "$status" = 0 ] || fail "nginx -t rejected deploy/nginx.conf"
ok "$("$NGINX" -v 2>&1) accepts deploy/nginx.conf"

# --- 3. deploy/env.example -------------------------------------------------------
step "deploy/env.example: every declared setting is listed"
SPEC=src/config/spec.rs
if [ -f "$SPEC" ]; then
  missing=()
  while read -r name; do
    grep -Eq "^(# )?${name}=" deploy/env.example || missing+=("$name")
  done < <(grep -oE 's\("[A-Z0-9_]+"' "$SPEC" | sed -E 's/s\("([A-Z0-9_]+)"/\1/')
  [ "${#missing[@]}" = 0 ] || fail "not in deploy/env.example: ${missing[*]}"
  ok "all $(grep -cE 's\("[A-Z0-9_]+"' "$SPEC") settings from $SPEC are listed"
else
  echo "    skipped: $SPEC not found"
fi

step "all checks passed"
