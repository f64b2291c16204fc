#!/usr/bin/env bash
# Validates the deployment files without Docker:
#   1. compose.yml parses and defines the expected services and wiring;
#   2. deploy/nginx.conf passes `nginx -t`;
#   3. deploy/aliyun/docker-compose.prod.yml, interpolated from the example env
#      file, defines the production services with restart, logging, resource
#      limits, health checks and grace periods;
#   4. deploy/aliyun/nginx.conf passes `nginx -t` (with a throw-away certificate);
#   5. deploy/env.example and deploy/aliyun/env/.env.production.example list every
#      setting the server declares and nothing that nothing reads, and README.md's
#      settings table has every setting;
#   6. the shell scripts under deploy/, scripts/ and .ci/ pass `shellcheck -S warning`.
# Installs PyYAML, nginx and shellcheck when missing (pip / apt-get). Exits
# non-zero on the first failure.
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

# env_file_lists FILE WHO REQUIRED... [-- EXTRA...]: fails unless FILE lists (as `NAME=` or
# `# NAME=`) every REQUIRED name, and no name but those and the EXTRA ones; WHO reads them.
env_file_lists() {
  local file=$1 who=$2 name required=() known=" " missing=() strays=()
  shift 2
  while [ "$#" -gt 0 ] && [ "$1" != -- ]; do required+=("$1"); known+="$1 "; shift; done
  [ "$#" = 0 ] || shift
  known+="$* "
  for name in "${required[@]}"; do
    grep -Eq "^(# )?${name}=" "$file" || missing+=("$name")
  done
  [ "${#missing[@]}" = 0 ] || fail "not in $file: ${missing[*]}"
  while read -r name; do
    [[ $known == *" $name "* ]] || strays+=("$name")
  done < <(grep -oE '^(# )?[A-Z][A-Z0-9_]*=' "$file" | sed -E 's/^(# )?//; s/=$//' | sort -u)
  [ "${#strays[@]}" = 0 ] || fail "$file: listed but $who reads none of: ${strays[*]}"
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

# Compose's own validator (interpolation, schema): the v2 plugin when present, else
# docker-compose 1.29 from Debian, whose `config` needs no Docker engine either.
# A dummy token satisfies the required ${LOCAL_AUTH_TOKEN:?...}.
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  echo "    docker compose not found; installing docker-compose with apt-get"
  apt_install docker-compose || fail "could not install docker-compose"
fi
compose_cli() {
  if docker compose version >/dev/null 2>&1; then docker compose "$@"; else docker-compose "$@"; fi
}
LOCAL_AUTH_TOKEN=${LOCAL_AUTH_TOKEN:-$(printf '%064d' 0)} compose_cli -f compose.yml config -q \
  || fail "docker compose config rejected compose.yml"
ok "compose config accepts compose.yml"

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

# --- 3. deploy/aliyun/docker-compose.prod.yml ------------------------------------
ALIYUN=deploy/aliyun
ALIYUN_COMPOSE=$ALIYUN/docker-compose.prod.yml
ALIYUN_ENV_EXAMPLE=$ALIYUN/env/.env.production.example
step "$ALIYUN_COMPOSE: services, restart, logging, limits, health checks"
[ -f "$ALIYUN_COMPOSE" ] || fail "$ALIYUN_COMPOSE not found"
[ -f "$ALIYUN_ENV_EXAMPLE" ] || fail "$ALIYUN_ENV_EXAMPLE not found"
python3 - "$ALIYUN_COMPOSE" "$ALIYUN_ENV_EXAMPLE" <<'PY' || fail "$ALIYUN_COMPOSE"
import os, re, sys, yaml

path, env_path = sys.argv[1], sys.argv[2]
base = os.path.dirname(path)
errors = []


def read_env(env_path):
    """NAME=value lines as compose reads an env file (quotes, ` #` comments)."""
    values = {}
    with open(env_path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[len("export "):].lstrip()
            name, sep, value = line.partition("=")
            if not sep:
                continue
            value = value.strip()
            if value and value[0] in "\"'" and value.find(value[0], 1) > 0:
                value = value[1:value.find(value[0], 1)]
            else:
                value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
            values[name.strip()] = value
    return values


env = read_env(env_path)
used = set()
unset_required = {}
# $$, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}, $NAME
TOKEN = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(text):
    def sub(m):
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4)
        used.add(name)
        value = env.get(name)
        missing = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if missing else value
        if op in (":?", "?"):
            if missing:
                unset_required.setdefault(name, f"${{{name}{op}}} is required ({arg}), but {env_path} "
                                                f"leaves {name} {'unset' if value is None else 'empty'}")
                return ""
        return value or ""
    return TOKEN.sub(sub, text)


def walk(node):
    # Compose interpolates the parsed values (not the YAML text), so do the same.
    if isinstance(node, dict):
        return {k: walk(v) for k, v in node.items()}
    if isinstance(node, list):
        return [walk(v) for v in node]
    if isinstance(node, str):
        return interpolate(node)
    return node


with open(path) as f:
    raw = yaml.safe_load(f)  # also resolves the x-* anchors and << merges
doc = walk(raw)
errors.extend(unset_required.values())


def seconds(value):
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(value))
    if not parts or "".join(n + u for n, u in parts) != str(value):
        return None
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


def env_files(svc):
    files = svc.get("env_file") or []
    files = [files] if isinstance(files, (str, dict)) else files
    return [f["path"] if isinstance(f, dict) else f for f in files]


def condition(svc, dep):
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return "service_started" if dep in deps else None
    return (deps.get(dep) or {}).get("condition", "service_started") if dep in deps else None


services = doc.get("services") or {}
expected = ["migrate", "api1", "api2", "consumer", "nginx"]
missing = [s for s in expected if s not in services]
if missing:
    errors.append(f"missing services: {', '.join(missing)}")
else:
    print(f"    ok: services present: {', '.join(expected)}"
          + (f" (+ {', '.join(s for s in services if s not in expected)})" if len(services) > len(expected) else ""))
    shutdown = int(env.get("SHUTDOWN_TIMEOUT_SECONDS") or 30)

    for name, svc in services.items():
        log = svc.get("logging") or {}
        opts = log.get("options") or {}
        if log.get("driver") != "json-file" or not opts.get("max-size") or not opts.get("max-file"):
            errors.append(f"{name}: logging should be json-file with max-size and max-file, is {log!r}")
        limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        if not limits.get("cpus") or not limits.get("memory"):
            errors.append(f"{name}: deploy.resources.limits needs cpus and memory, is {limits!r}")
        if name not in expected and "profiles" not in svc:
            errors.append(f"{name}: an extra service should be optional (profiles:)")

    for name in ["api1", "api2", "consumer", "nginx"]:
        if services[name].get("restart") != "unless-stopped":
            errors.append(f"{name}: restart should be unless-stopped, is {services[name].get('restart')!r}")

    for name in ["migrate", "api1", "api2", "consumer"]:
        svc = services[name]
        if env_files(svc) != ["env/.env.production"]:
            errors.append(f"{name}: env_file should be env/.env.production, is {svc.get('env_file')!r}")
        if not svc.get("image"):
            errors.append(f"{name}: no image")
        environment = svc.get("environment") or {}
        if not isinstance(environment, dict):
            errors.append(f"{name}: environment should be a mapping")
            continue
        if not str(environment.get("DATABASE_URL", "")).startswith("postgres://"):
            errors.append(f"{name}: DATABASE_URL should be built as postgres://..., is {environment.get('DATABASE_URL')!r}")
        if not str(environment.get("REDIS_URL", "")).startswith("redis://"):
            errors.append(f"{name}: REDIS_URL should be built as redis://..., is {environment.get('REDIS_URL')!r}")

    for name in ["api1", "api2", "consumer"]:
        grace = seconds(services[name].get("stop_grace_period"))
        if grace is None or grace <= shutdown:
            errors.append(f"{name}: stop_grace_period should exceed SHUTDOWN_TIMEOUT_SECONDS ({shutdown}s), "
                          f"is {services[name].get('stop_grace_period')!r}")
        if condition(services[name], "migrate") != "service_completed_successfully":
            errors.append(f"{name}: should depend on migrate with service_completed_successfully")

    for name in ["api1", "api2"]:
        svc = services[name]
        if svc.get("command") != ["serve", "--bind", "0.0.0.0:8000"]:
            errors.append(f"{name}: unexpected command {svc.get('command')!r}")
        check = svc.get("healthcheck") or {}
        test = check.get("test")
        test = " ".join(test) if isinstance(test, list) else str(test or "")
        if check.get("disable") or "http://127.0.0.1:8000/readyz" not in test:
            errors.append(f"{name}: healthcheck should probe http://127.0.0.1:8000/readyz, is {check!r}")
        environment = svc.get("environment") or {}
        if environment.get("INSTANCE_ID") != name:
            errors.append(f"{name}: INSTANCE_ID should be {name}, is {environment.get('INSTANCE_ID')!r}")
        if str(environment.get("PROACTIVITY_ENGINE_IN_SERVE")).lower() != "false":
            errors.append(f"{name}: PROACTIVITY_ENGINE_IN_SERVE should be \"false\" (the consumer runs the engine)")

    for name, command in [("migrate", ["migrate"]), ("consumer", ["consumer"])]:
        svc = services[name]
        if svc.get("command") != command:
            errors.append(f"{name}: unexpected command {svc.get('command')!r}")
        if (svc.get("healthcheck") or {}).get("disable") is not True:
            errors.append(f"{name}: the image's HTTP healthcheck should be disabled")
    if services["migrate"].get("restart") != "no":
        errors.append(f"migrate: restart should be \"no\" (one-shot), is {services['migrate'].get('restart')!r}")

    nginx = services["nginx"]
    published = set()
    for port in nginx.get("ports") or []:
        published.add(str(port.get("published")) if isinstance(port, dict) else str(port).split(":")[-2])
    if not {"80", "443"} <= published:
        errors.append(f"nginx: should publish 80 and 443, publishes {sorted(published)}")
    mounts = {}
    for vol in nginx.get("volumes") or []:
        parts = str(vol).split(":")
        mounts[parts[1] if len(parts) > 1 else parts[0]] = parts[0]
    conf = mounts.get("/etc/nginx/nginx.conf")
    if conf is None:
        errors.append("nginx: nothing mounted at /etc/nginx/nginx.conf")
    elif not os.path.isfile(os.path.join(base, conf)):
        errors.append(f"nginx: mounted file {conf} does not exist next to {path}")
    if "/etc/nginx/certs" not in mounts:
        errors.append("nginx: no certificate folder mounted at /etc/nginx/certs")
    for dep in ["api1", "api2"]:
        if condition(nginx, dep) != "service_healthy":
            errors.append(f"nginx: should depend on {dep} with service_healthy")

    if not errors:
        print("    ok: restart policies, json-file log limits and resource limits on every service; "
              "/readyz health checks, grace periods over SHUTDOWN_TIMEOUT_SECONDS, the env file "
              "and migrate-first ordering in place")

# Every variable the compose file interpolates is documented in the example env file.
with open(env_path) as f:
    listed = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", f.read(), re.M))
undocumented = sorted(used - listed)
if undocumented:
    errors.append(f"{env_path} does not list {', '.join(undocumented)}, which {path} reads")
else:
    print(f"    ok: the {len(used)} variables it interpolates are listed in {env_path}")

for e in errors:
    print(f"    FAIL: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY

# Compose's own validator when the plugin is present. The compose file's
# env_file (env/.env.production) holds real secrets and is not in the repository,
# so a temporary project folder stands in, with the example in its place.
mkdir -p "$TMPDIR_CHECK/aliyun/env"
cp "$ALIYUN_ENV_EXAMPLE" "$TMPDIR_CHECK/aliyun/env/.env.production"
compose_cli --project-directory "$TMPDIR_CHECK/aliyun" -f "$ROOT/$ALIYUN_COMPOSE" \
  --env-file "$ROOT/$ALIYUN_ENV_EXAMPLE" config -q \
  || fail "docker compose config rejected $ALIYUN_COMPOSE"
ok "compose config accepts $ALIYUN_COMPOSE with $ALIYUN_ENV_EXAMPLE"

# --- 4. deploy/aliyun/nginx.conf -------------------------------------------------
step "$ALIYUN/nginx.conf: nginx -t"
# As for deploy/nginx.conf: loopback upstreams, plus a throw-away self-signed
# certificate in place of /etc/nginx/certs, which only exists in the container.
if ! command -v openssl >/dev/null 2>&1; then
  echo "    openssl not found; installing it with apt-get"
  apt_install openssl || fail "could not install openssl"
fi
CERT_DIR="$TMPDIR_CHECK/certs"
mkdir -p "$CERT_DIR"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -keyout "$CERT_DIR/privkey.pem" -out "$CERT_DIR/fullchain.pem" >"$TMPDIR_CHECK/openssl.log" 2>&1 \
  || { cat "$TMPDIR_CHECK/openssl.log" >&2; fail "openssl could not make a test certificate"; }
ALIYUN_NGINX_TEST_CONF="$TMPDIR_CHECK/aliyun-nginx.conf"
sed -E -e 's/\bapi1:8000\b/127.0.0.1:8001/g' -e 's/\bapi2:8000\b/127.0.0.1:8002/g' \
  -e "s#^([[:space:]]*ssl_certificate(_key)?[[:space:]]+)/etc/nginx/certs/#\\1$CERT_DIR/#" \
  "$ALIYUN/nginx.conf" >"$ALIYUN_NGINX_TEST_CONF"
changed=$(diff "$ALIYUN/nginx.conf" "$ALIYUN_NGINX_TEST_CONF" | grep -c '^>' || true)
[ "$changed" = 4 ] || fail "expected exactly the two upstream and the two certificate lines to be rewritten, got $changed"
ok "upstreams -> 127.0.0.1:8001/8002, certificates -> a self-signed pair, in a temporary copy"
status=0
out=$(as_root "$NGINX" -t -e stderr -c "$ALIYUN_NGINX_TEST_CONF" 2>&1) || status=$?
printf '%s\n' "$out" | sed 's/^/    /'
[ "$status" = 0 ] || fail "nginx -t rejected $ALIYUN/nginx.conf"
ok "$("$NGINX" -v 2>&1) accepts $ALIYUN/nginx.conf"

# --- 5. settings lists -----------------------------------------------------------
step "settings: $ALIYUN_ENV_EXAMPLE, deploy/env.example and README.md against src/config/spec.rs"
SPEC=src/config/spec.rs
# Names the env files may list although the server does not read them: what
# docker-compose.prod.yml interpolates, and what the Aliyun backup script reads.
COMPOSE_VARS=(RDS_HOST RDS_PORT RDS_USER RDS_PASSWORD RDS_DATABASE
  REDIS_HOST REDIS_PORT REDIS_PASSWORD MC_IMAGE ADMIN_IMAGE TLS_CERT_DIR)
BACKUP_VARS=(BACKUP_S3_URI BACKUP_RETENTION_DAYS AWS_ACCESS_KEY_ID
  AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION BACKUP_S3_ENDPOINT)
# Read by Compose itself from the env file.
COMPOSE_OWN_VARS=(COMPOSE_PROJECT_NAME)
if [ -f "$SPEC" ]; then
  mapfile -t settings < <(grep -oE 's\("[A-Z0-9_]+"' "$SPEC" | sed -E 's/s\("([A-Z0-9_]+)"/\1/')
  [ "${#settings[@]}" -gt 0 ] || fail "no s(\"NAME\", ...) settings found in $SPEC"

  unread=()
  for name in "${COMPOSE_VARS[@]}"; do
    grep -Eq "\\\$\\{${name}([:?}-]|\$)" "$ALIYUN_COMPOSE" || unread+=("$name")
  done
  [ "${#unread[@]}" = 0 ] || fail "allowed as compose variables, but $ALIYUN_COMPOSE reads none of: ${unread[*]}"

  for file in deploy/env.example "$ALIYUN_ENV_EXAMPLE"; do
    env_file_lists "$file" "the server (or compose, or the backup script)" "${settings[@]}" \
      -- "${COMPOSE_VARS[@]}" "${BACKUP_VARS[@]}" "${COMPOSE_OWN_VARS[@]}"
    ok "$file lists all ${#settings[@]} settings, and nothing else but compose/backup variables"
  done

  missing=()
  for name in "${settings[@]}"; do
    grep -qF "| \`${name}\` |" README.md || missing+=("$name")
  done
  [ "${#missing[@]}" = 0 ] || fail "not in README.md's settings table (scripts/readme-settings): ${missing[*]}"
  ok "README.md's settings table has all ${#settings[@]} settings"
else
  echo "    skipped: $SPEC not found"
fi

# --- connector settings --------------------------------------------------------------
step "deploy/connector/mc-connector.env.example against mc-connector's settings"
CONNECTOR_SRC=src/bin/mc-connector/main.rs
CONNECTOR_ENV=deploy/connector/mc-connector.env.example
mapfile -t connector_settings < <({ grep -oE 'env = "[A-Z0-9_]+"' "$CONNECTOR_SRC" | sed -E 's/env = "([A-Z0-9_]+)"/\1/'; echo LOG_LEVEL; } | sort -u)
[ "${#connector_settings[@]}" -gt 1 ] || fail "no env = \"NAME\" settings found in $CONNECTOR_SRC"
env_file_lists "$CONNECTOR_ENV" mc-connector "${connector_settings[@]}"
ok "$CONNECTOR_ENV lists the ${#connector_settings[@]} settings mc-connector reads, and nothing else"

# --- 6. shell scripts ------------------------------------------------------------
step "shell scripts: shellcheck -S warning"
if ! command -v shellcheck >/dev/null 2>&1; then
  echo "    shellcheck not found; installing it with apt-get"
  apt_install shellcheck || fail "could not install shellcheck"
fi
# *.sh with a bash/sh shebang, and extension-less scripts with a bash shebang.
sh_shebang='^#!.*/(env[[:space:]]+)?(ba)?sh([[:space:]]|$)'
bash_shebang='^#!.*/(env[[:space:]]+)?bash([[:space:]]|$)'
shell_scripts=()
while IFS= read -r -d '' file; do
  first=$(head -n 1 "$file")
  if [[ $file == *.sh && $first =~ $sh_shebang ]] || [[ $file != *.sh && $first =~ $bash_shebang ]]; then
    shell_scripts+=("$file")
  fi
done < <(find deploy scripts .ci -type f \( -name '*.sh' -o ! -name '*.*' \) -print0 2>/dev/null | sort -z)
[ "${#shell_scripts[@]}" -gt 0 ] || fail "no shell scripts found"
status=0
out=$(shellcheck -S warning "${shell_scripts[@]}" 2>&1) || status=$?
[ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/    /'
[ "$status" = 0 ] || fail "shellcheck found warnings or errors (style and info notes do not fail)"
ok "$(shellcheck --version | sed -n 's/^version: /shellcheck /p') passes ${#shell_scripts[@]} scripts: ${shell_scripts[*]}"

step "all checks passed"
