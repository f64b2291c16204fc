#!/usr/bin/env bash
# Benchmark (not a test): authenticated GET /api/v1/users/me per second in AUTH_MODE=clerk
# (an RS256 session token verified against cached keys) against AUTH_MODE=local (a constant-
# time token compare), one release instance each, wrk with CONNS connections for DURATION.
# Clerk is a stand-in on loopback (python3 http.server serving the JWKS of a key made by
# openssl, which also signs the token).
#   benches/clerk-auth.sh
#   CONNS=128 DURATION=30s benches/clerk-auth.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-64}
DURATION=${DURATION:-15s}
TOKEN=bench-token-0123456789-0123456789-0123456789-0123456789
CLERK_PORT=${CLERK_PORT:-18190}
work=$(mktemp -d)
command -v wrk >/dev/null 2>&1 || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }

# The key, its JWKS and a token signed with it (sub user_bench, an hour long).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/key.pem" 2>/dev/null
python3 - "$work" <<'PY'
import base64, json, subprocess, sys, time
work = sys.argv[1]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
modulus = subprocess.check_output(["openssl", "rsa", "-in", f"{work}/key.pem", "-noout", "-modulus"]).decode().split("=", 1)[1].strip()
n = bytes.fromhex(modulus)
json.dump({"keys": [{"kid": "bench", "kty": "RSA", "alg": "RS256", "n": b64(n), "e": b64((65537).to_bytes(3, "big"))}]},
          open(f"{work}/jwks.json", "w"))
now = int(time.time())
signed = b64(json.dumps({"alg": "RS256", "kid": "bench"}).encode()) + "." + b64(json.dumps(
    {"sub": "user_bench", "email": "bench@example.test", "name": "Bench", "iat": now, "nbf": now, "exp": now + 3600}).encode())
sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", f"{work}/key.pem"], input=signed.encode(), capture_output=True, check=True).stdout
open(f"{work}/token", "w").write(signed + "." + b64(sig))
PY
mkdir -p "$work/www/v1" && cp "$work/jwks.json" "$work/www/v1/jwks"
python3 -m http.server "$CLERK_PORT" --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 &
clerk_pid=$!
trap 'kill $clerk_pid 2>/dev/null; rm -rf "$work"' EXIT

run() { # mode, token, extra env
  local mode=$1 token=$2
  EXTRA_ENV=$3 INSTANCES=1
  (
    # shellcheck source=benches/servers.sh
    source benches/servers.sh
    curl -fsS -H "Authorization: Bearer $token" "$servers/api/v1/users/me" >/dev/null # provisions
    echo "== AUTH_MODE=$mode: GET /api/v1/users/me ($CONNS connections, $DURATION)"
    wrk -t2 -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $token" "$servers/api/v1/users/me" |
      grep -E 'Requests/sec|50%|99%|Non-2xx'
  )
}
run local "$TOKEN" ""
run clerk "$(cat "$work/token")" "AUTH_MODE=clerk CLERK_SECRET_KEY=sk_test_bench CLERK_API_URL=http://127.0.0.1:$CLERK_PORT"
