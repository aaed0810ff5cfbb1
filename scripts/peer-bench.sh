#!/usr/bin/env bash
# The peer benchmark (issue 14): one `read_case` call on the example case platform, measured
# directly and through capgate and mcp-proxy, interleaved, at 1, 8 and 32 clients.
#
#   bash scripts/peer-bench.sh                  # PEER_DURATION=10 s x PEER_REPS=3
#   PEER_QUICK=1 bash scripts/peer-bench.sh     # 3 s x 3 reps, 0.5 s warm-up
#
# Paths (PEER_PATHS, any of them, in this order by default):
#   direct-http     the example server over streamable HTTP (benches/peer's case-platform-peer)
#   direct-stdio    the example server over stdio, as a gateway reaches it
#   capgate-hs256   capgate's HTTP front, an HS256 token from `capgate token`
#   capgate-rs256   capgate's HTTP front, an RS256 token (tests/fixtures key pair, PEM issuer)
#   capgate-stdio   `capgate serve --stdio`, the HS256 token verified once at start
#   mcp-proxy       mcp-proxy 0.6 (installed into target/peer-tools), JWT auth against the same
#                   RS256 key (a JWKS served over HTTP), audit on, stdio backend
# Every gateway runs the example server over stdio as its downstream: capgate the release
# `case-platform`; mcp-proxy, which passes no `_meta` on (where the example server reads the
# tenant a gateway injects), the same modules as `case-platform-peer --stdio --actor JSON`.
# Each measurement starts its server or gateway afresh (bound to 127.0.0.1 port 0; the port is
# read back from /proc) and stops it by PID afterwards, so the peak RSS is that of one
# concurrency level (warm-up and window). The
# clients speak HTTP/1.1 keep-alive with TCP_NODELAY and without TCP_QUICKACK, as ordinary MCP
# clients do; each HTTP client has its own connection and session, stdio clients share the one
# session a stdio server has, their requests pipelined.
#
# Environment: PEER_DURATION (seconds measured, 10), PEER_WARMUP (seconds before, 1),
# PEER_REPS (3), PEER_CLIENTS ("1 8 32"), PEER_PATHS (above), PEER_OUT (output directory,
# default target/peer-bench/<time>), PEER_SKIP_BUILD=1 (use the binaries already built),
# PEER_PROFILE=debug (capgate's debug build: a smoke test of the script, not a measurement),
# PEER_KEEP_DATA=1 (keep each capgate's store and decision log).
# The table (medians across repetitions) is printed and written to $PEER_OUT/table.md, the
# samples to $PEER_OUT/samples.jsonl, every process's log to $PEER_OUT/logs/. Throughput is
# shown as a share of direct stdio (the downstream as every gateway reaches it, issue 14's
# "direct") and of direct HTTP; "p50 added" is over direct stdio's p50.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "${PEER_QUICK:-0}" = 1 ]; then
  duration=${PEER_DURATION:-3} warmup=${PEER_WARMUP:-0.5}
else
  duration=${PEER_DURATION:-10} warmup=${PEER_WARMUP:-1}
fi
reps=${PEER_REPS:-3}
read -r -a clients_levels <<< "${PEER_CLIENTS:-1 8 32}"
read -r -a paths <<< "${PEER_PATHS:-direct-http direct-stdio capgate-hs256 capgate-rs256 capgate-stdio mcp-proxy}"
out=${PEER_OUT:-target/peer-bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
samples=$out/samples.jsonl
: > "$samples"

mcp_proxy_version='~0.6.0'
tools_root=$root/target/peer-tools
mcp_proxy=$tools_root/bin/mcp-proxy
loadgen=$root/target/peer/release/peer-loadgen
case_peer=$root/target/peer/release/case-platform-peer
profile=${PEER_PROFILE:-release}
capgate=$root/target/$profile/capgate
case_stdio=$root/target/$profile/case-platform

audience=capgate-peer-bench
rs_issuer=https://rs256.peer-bench.local
actor='{"tenant":"acme","user":"alice","agent":"drafting-agent","run_id":null}'

# Nothing from the caller's environment changes what a child does.
unset CAPGATE_CONFIG CAPGATE_TOKEN CAPGATE_LOG CASE_PLATFORM_JOURNAL CASE_PLATFORM_TEST_HOOKS \
  CASE_PLATFORM_LOG PEER_TOKEN

# --- Processes this script started, stopped by PID (with the children they started) --------
started=()
stop_pid() {
  local pid=$1 children
  children=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for child in $children; do
    kill -KILL "$child" 2>/dev/null || true
  done
}
cleanup() {
  for pid in "${started[@]}"; do
    stop_pid "$pid"
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Build --------------------------------------------------------------------------------
if [ "${PEER_SKIP_BUILD:-0}" != 1 ]; then
  echo "building capgate and case-platform ($profile) ..." >&2
  if [ "$profile" = release ]; then
    cargo build --release --bins --quiet
  else
    cargo build --bins --quiet
  fi
  echo "building the load generator (release) ..." >&2
  CARGO_TARGET_DIR=$root/target/peer cargo build --release --quiet \
    --manifest-path benches/peer/Cargo.toml
fi
if [[ " ${paths[*]} " == *" mcp-proxy "* ]]; then
  if ! cargo install --list --root "$tools_root" | grep -q '^mcp-proxy v0\.6\.'; then
    echo "installing mcp-proxy $mcp_proxy_version into $tools_root ..." >&2
    cargo install --locked --quiet --root "$tools_root" mcp-proxy --version "$mcp_proxy_version"
  fi
fi

# --- Configuration and tokens ---------------------------------------------------------------
# capgate: the repository's contracts and policies, the example downstream, a dev HS256 issuer
# (for `capgate token`) and an RS256 issuer with the test public key; budgets and per-principal
# limits far above what a run reaches (the defaults would refuse most of the calls), the rest
# as shipped (decision log, INFO logging).
capgate_config() { # DIR: a config whose store and log live in DIR/data
  mkdir -p "$1"
  cat > "$1/capgate.toml" <<EOF
capabilities_dir = "$root/capabilities"
policies_dir = "$root/policies"
data_dir = "$1/data"

[enforcement]
max_calls_per_run = 1000000000
max_calls_per_tool = 1000000000
max_cost_per_run = 1000000000

[server]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1/mcp"

[limits]
requests_per_second = 1000000
request_burst = 1000000
concurrent_requests_per_principal = 1024
sessions_per_principal = 1024

[[issuers]]
issuer = "https://dev.capgate.local"
audience = "$audience"
algorithm = "HS256"
secret_file = "$out/dev-issuer.secret"
dev = true

[[issuers]]
issuer = "$rs_issuer"
audience = "$audience"
algorithm = "RS256"
public_key_file = "$root/tests/fixtures/test-rs256-public.pem"

[[downstream]]
id = "case"
command = "$case_stdio"
timeout_ms = 10000
EOF
  echo "$1/capgate.toml"
}

token_config=$(capgate_config "$out/token")
hs_token=$("$capgate" token --config "$token_config" --user alice --tenant acme \
  --roles analyst --agent drafting-agent --ttl 86400)
rs_token=$("$loadgen" mint --key tests/fixtures/test-rs256-private.pem --kid test-key-1 \
  --issuer "$rs_issuer" --audience "$audience" --user alice --tenant acme --roles analyst \
  --agent drafting-agent)
# mcp-proxy requires its own resource identifier, built from its listen address, as the audience.
proxy_audience=http://127.0.0.1:0
proxy_token=$("$loadgen" mint --key tests/fixtures/test-rs256-private.pem --kid test-key-1 \
  --issuer "$rs_issuer" --audience "$proxy_audience" --user alice --tenant acme --roles analyst \
  --agent drafting-agent)

if [[ " ${paths[*]} " == *" mcp-proxy "* ]]; then
  # mcp-proxy verifies JWTs against a JWKS URL: the test key's JWKS, served locally.
  "$loadgen" serve-file tests/fixtures/test-jwks.json > "$out/logs/jwks.log" 2>&1 &
  jwks_pid=$!
  started+=("$jwks_pid")
  jwks_port=$("$loadgen" listen-port "$jwks_pid" --timeout 10)
  cat > "$out/mcp-proxy.toml" <<EOF
[proxy]
name = "peer-bench"
separator = "__"
shutdown_timeout_seconds = 1

[proxy.listen]
host = "127.0.0.1"
port = 0

[[backends]]
name = "case"
transport = "stdio"
command = "$case_peer"
args = ["--stdio", "--actor", '$actor']

[auth]
type = "jwt"
issuer = "$rs_issuer"
audience = "$proxy_audience"
jwks_uri = "http://127.0.0.1:$jwks_port/jwks.json"

[security]
admin_token = "peer-bench-admin-token"

[observability]
audit = true
log_level = "info"
EOF
fi

# --- One measurement ------------------------------------------------------------------------
# Starts COMMAND in the background (logs to LOG), waits until it listens, sets $server_pid and
# $server_port.
start_server() { # LOG COMMAND...
  local log=$1
  shift
  "$@" > "$log" 2>&1 &
  server_pid=$!
  started+=("$server_pid")
  if ! server_port=$("$loadgen" listen-port "$server_pid" --timeout 60); then
    echo "$* did not start; its log ($log):" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
}

stop_server() {
  stop_pid "$server_pid"
  local kept=()
  for pid in "${started[@]}"; do
    [ "$pid" = "$server_pid" ] || kept+=("$pid")
  done
  started=("${kept[@]}")
}

# capgate binds first, then waits for its downstream before it serves: it is ready when
# /healthz answers.
wait_capgate_healthy() {
  for _ in $(seq 600); do
    if curl -sf "http://127.0.0.1:$server_port/healthz" 2>/dev/null | grep -q '"status": *"up"'; then
      return 0
    fi
    sleep 0.1
  done
  echo "capgate did not become healthy" >&2
  exit 1
}

measure() { # PATH CLIENTS REP
  local path=$1 clients=$2 rep=$3 tag="$1-c$2-r$3"
  local common=(--rep "$rep" --clients "$clients" --duration "$duration" --warmup "$warmup"
    --out "$samples")
  case $path in
    direct-http)
      start_server "$out/logs/$tag.log" "$case_peer"
      "$loadgen" http --url "http://127.0.0.1:$server_port/mcp" "${common[@]}" \
        --label "direct HTTP" --tool read_case --actor "$actor"
      stop_server ;;
    direct-stdio)
      "$loadgen" stdio --stderr "$out/logs/$tag.log" "${common[@]}" \
        --label "direct stdio" --tool read_case --actor "$actor" \
        -- "$case_stdio" ;;
    capgate-hs256 | capgate-rs256)
      local token=$hs_token label="capgate HTTP, HS256"
      if [ "$path" = capgate-rs256 ]; then
        token=$rs_token label="capgate HTTP, RS256"
      fi
      start_server "$out/logs/$tag.log" "$capgate" serve --config "$(capgate_config "$out/gw/$tag")"
      wait_capgate_healthy
      PEER_TOKEN=$token "$loadgen" http --url "http://127.0.0.1:$server_port/mcp" \
        --gateway-pid "$server_pid" "${common[@]}" \
        --label "$label" --tool case__read_case
      stop_server ;;
    capgate-stdio)
      CAPGATE_TOKEN=$hs_token "$loadgen" stdio --stderr "$out/logs/$tag.log" --child-is-gateway \
        "${common[@]}" --label "capgate stdio, HS256" \
        --tool case__read_case \
        -- "$capgate" serve --stdio --config "$(capgate_config "$out/gw/$tag")" ;;
    mcp-proxy)
      start_server "$out/logs/$tag.log" "$mcp_proxy" --config "$out/mcp-proxy.toml"
      PEER_TOKEN=$proxy_token "$loadgen" http --url "http://127.0.0.1:$server_port/" \
        --gateway-pid "$server_pid" "${common[@]}" \
        --label "mcp-proxy, JWT RS256" --tool case__read_case
      stop_server ;;
    *)
      echo "unknown path $path (see the header of $0)" >&2
      exit 2 ;;
  esac > /dev/null
  # A gateway's store and decision log (~50 MB a measurement) are not kept unless asked for.
  if [ "${PEER_KEEP_DATA:-0}" != 1 ]; then
    rm -rf "$out/gw/$tag/data"
  fi
}

# --- The run: every repetition takes each concurrency level in turn, and each level every
# path in turn, the paths' order rotated by one each repetition ------------------------------
echo "peer bench: ${paths[*]}; clients ${clients_levels[*]}; ${reps} x ${duration} s (+${warmup} s warm-up); output $out" >&2
n=${#paths[@]}
for rep in $(seq "$reps"); do
  for clients in "${clients_levels[@]}"; do
    for i in $(seq 0 $((n - 1))); do
      path=${paths[$(((i + rep - 1) % n))]}
      echo "rep $rep, $clients clients: $path" >&2
      measure "$path" "$clients" "$rep"
    done
  done
done

{
  echo "$(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' (src modified)'), ${reps} x ${duration} s (+${warmup} s warm-up), medians across repetitions"
  echo "load: $(uptime)"
  echo
  "$loadgen" report "$samples" --baseline "direct stdio" --baseline "direct HTTP"
} | tee "$out/table.md"
