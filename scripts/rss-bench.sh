#!/usr/bin/env bash
# The RSS benchmark (issue 14: "capgate's RSS <= 64 MB at 1,000 tools and 1,000 sessions"):
# capgate's resident memory with N tools behind it and S agent sessions open, for each case
# (N tools, S sessions) given.
#
#   bash scripts/rss-bench.sh          # cases 1000x1 10x1000 1000x1000 1000x1000-closed
#   RSS_CASES="1000x1000" RSS_REPS=3 bash scripts/rss-bench.sh
#
# For every case and repetition a fresh capgate (its release binary, CAPGATE_BIN) starts with
# one downstream, benches/peer's `many-tools --tools N` over stdio, and contracts for its N
# tools generated into the output directory (`capabilities/many.toml`: server "many", every
# tool a low-risk read, cost 1) with a copy of the repository's `policies/` plus one permit
# (`bench.cedar`) that lets drafting agents acting for analysts discover and call the
# server's reads: exactly what `read_case` needs (tools.cedar's "case-agents-read"), for the
# generated tools. `capgate policy check` validates the copy; every session checks that it
# lists exactly N tools.
# capgate binds 127.0.0.1 port 0 (the port is read back from /proc); once /healthz is up (its
# downstream connected and the tools listed) its VmRSS is read ("after start"). Then
# `peer-loadgen sessions` opens S sessions over streamable HTTP with an HS256 token from
# `capgate token` (user alice, tenant acme, role analyst, agent drafting-agent), each on its
# own keep-alive connection: initialize, notifications/initialized, tools/list (every page),
# one tools/call (session i calls the (i mod N)-th tool), RSS_CONCURRENCY sessions being
# opened at a time; with all S open it reads VmRSS and VmHWM, then DELETEs every session and
# reads VmRSS again. capgate is stopped by PID (and the downstream it started) afterwards.
# A case TOOLSxSESSIONS-closed closes each session's connection once its call is answered:
# the sessions are held without their connections, what a session costs apart from its
# connection. RssAnon (heap, stacks) is shown beside VmRSS, whose rest is mostly capgate's
# file-backed binary pages.
#
# The config is capgate's defaults except: per-principal limits raised for S sessions of one
# principal (sessions_per_principal, request rate, concurrency), the header-read timeout (which
# also closes connections idle between requests) and the session idle time raised so that
# every session and its connection are still open when the memory is read, and budgets far
# above what a run uses. The decision log is on, as shipped.
#
# Environment: CAPGATE_BIN (default target/release/capgate; never built here),
# RSS_CASES ("TOOLSxSESSIONS[-closed] ...", default "1000x1 10x1000 1000x1000
# 1000x1000-closed"), RSS_REPS (1),
# RSS_CONCURRENCY (8), RSS_LIST_PAGE_SIZE (capgate's [limits] list_page_size; default
# capgate's own, 100), RSS_OUT (output directory, default target/rss-bench/<time>),
# RSS_SKIP_BUILD=1 (use the benches/peer binaries already in target/peer/release),
# RSS_KEEP_DATA=1 (keep each capgate's store and decision log). The caller's MALLOC_*
# variables reach capgate (e.g. MALLOC_ARENA_MAX=2, to see what glibc's arenas add).
# The table is printed and written to $RSS_OUT/table.md, each run's JSON line (peer-loadgen's,
# plus the case and the RSS after start) to $RSS_OUT/runs.jsonl, logs to $RSS_OUT/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

capgate=${CAPGATE_BIN:-$root/target/release/capgate}
case $capgate in /*) ;; *) capgate=$root/$capgate ;; esac
loadgen=$root/target/peer/release/peer-loadgen
many_tools=$root/target/peer/release/many-tools
read -r -a cases <<< "${RSS_CASES:-1000x1 10x1000 1000x1000 1000x1000-closed}"
reps=${RSS_REPS:-1}
concurrency=${RSS_CONCURRENCY:-8}
page_size=${RSS_LIST_PAGE_SIZE:-}
out=${RSS_OUT:-target/rss-bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
runs=$out/runs.jsonl
: > "$runs"
audience=capgate-rss-bench

# Nothing from the caller's environment changes what a child does.
unset CAPGATE_CONFIG CAPGATE_TOKEN CAPGATE_LOG PEER_TOKEN MANY_TOOLS MANY_TOOLS_PAGE_SIZE \
  MANY_TOOLS_LOG

if [ ! -x "$capgate" ]; then
  echo "no capgate binary at $capgate (build it, or set CAPGATE_BIN)" >&2
  exit 1
fi
for c in "${cases[@]}"; do
  if ! [[ $c =~ ^[0-9]+x[0-9]+(-closed)?$ ]]; then
    echo "RSS_CASES: '$c' is not TOOLSxSESSIONS[-closed]" >&2
    exit 2
  fi
done

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

# --- Build (the benches/peer workspace only) ----------------------------------------------
if [ "${RSS_SKIP_BUILD:-0}" != 1 ]; then
  echo "building benches/peer (release) ..." >&2
  CARGO_TARGET_DIR=$root/target/peer cargo build --release --quiet \
    --manifest-path benches/peer/Cargo.toml
fi

# --- Contracts and policies -----------------------------------------------------------------
contracts() { # N: a capabilities directory with contracts for many-tools' N tools
  local dir=$out/capabilities-$1
  if [ ! -f "$dir/many.toml" ]; then
    mkdir -p "$dir"
    {
      echo "# Generated by scripts/rss-bench.sh: the $1 tools of benches/peer's many-tools."
      echo 'server = "many"'
      for ((i = 0; i < $1; i++)); do
        printf '\n[tools.tool_%05d]\neffect = "read"\nrisk = "low"\ncost = 1\n' "$i"
      done
    } > "$dir/many.toml"
  fi
  echo "$dir"
}

policies=$out/policies
rm -rf "$policies"
cp -R "$root/policies" "$policies"
cat > "$policies/bench.cedar" <<'EOF'
// Added by scripts/rss-bench.sh (not in the repository's policies/): the generated tools of
// the bench's downstream "many" are reads that drafting, risk and supervisor agents acting
// for an analyst or senior reviewer may discover and call, as tools.cedar's
// "case-agents-read" allows read_case.
@id("rss-bench-many-tools-read")
@reason("case agents may use the RSS benchmark's read-only tools")
permit (
  principal,
  action in [Action::"discover_tool", Action::"call_tool"],
  resource is Tool
)
when
{
  (principal in AgentRole::"drafting-agent" ||
   principal in AgentRole::"risk-agent" ||
   principal in AgentRole::"supervisor-agent") &&
  (context.user in Role::"analyst" || context.user in Role::"senior_reviewer") &&
  resource.server == "many" &&
  resource.effect == "read"
};
EOF

capgate_config() { # DIR TOOLS: a config whose store and log live in DIR/data
  mkdir -p "$1"
  local page_line=
  if [ -n "$page_size" ]; then
    page_line="list_page_size = $page_size"
  fi
  cat > "$1/capgate.toml" <<EOF
capabilities_dir = "$(contracts "$2")"
policies_dir = "$policies"
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
sessions_per_principal = 10000
header_read_timeout_ms = 3600000
session_idle_seconds = 3600
$page_line

[[issuers]]
issuer = "https://dev.capgate.local"
audience = "$audience"
algorithm = "HS256"
secret_file = "$out/dev-issuer.secret"
dev = true

[[downstream]]
id = "many"
command = "$many_tools"
args = ["--tools", "$2"]
timeout_ms = 10000
EOF
  echo "$1/capgate.toml"
}

token_config=$(capgate_config "$out/token" 1)
echo "checking the policies (repository's + bench.cedar) ..." >&2
"$capgate" policy check --config "$token_config" "$policies" > "$out/logs/policy-check.log" 2>&1 || {
  cat "$out/logs/policy-check.log" >&2
  exit 1
}
token=$("$capgate" token --config "$token_config" --user alice --tenant acme \
  --roles analyst --agent drafting-agent --ttl 86400)

# --- One run ----------------------------------------------------------------------------------
status_kib() { # PID FIELD: a kB field of /proc/PID/status
  awk -v field="$2:" '$1 == field { print $2 }' "/proc/$1/status"
}

run_case() { # TOOLS SESSIONS REP [closed]
  local tools=$1 sessions=$2 rep=$3 closed=${4:-} tag="t$1-s$2$4-r$3" pid port line
  local start_kib start_anon_kib close_flag=() connections=open
  local config
  config=$(capgate_config "$out/gw/$tag" "$tools")
  "$capgate" serve --config "$config" > "$out/logs/$tag.log" 2>&1 &
  pid=$!
  started+=("$pid")
  if ! port=$("$loadgen" listen-port "$pid" --timeout 120); then
    echo "capgate did not start; its log ($out/logs/$tag.log):" >&2
    tail -n 40 "$out/logs/$tag.log" >&2
    exit 1
  fi
  # Healthy: its downstream connected and listed (capgate lists a downstream's tools before it
  # counts it as connected).
  local healthy=0
  for _ in $(seq 1200); do
    if curl -sf "http://127.0.0.1:$port/healthz" 2>/dev/null | grep -q '"status": *"up"'; then
      healthy=1
      break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ "$healthy" != 1 ]; then
    echo "capgate did not become healthy; its log ($out/logs/$tag.log):" >&2
    tail -n 40 "$out/logs/$tag.log" >&2
    exit 1
  fi
  start_kib=$(status_kib "$pid" VmRSS)
  start_anon_kib=$(status_kib "$pid" RssAnon)
  if [ "$closed" = -closed ]; then
    close_flag=(--close-connections)
    connections=closed
  fi
  line=$(PEER_TOKEN=$token "$loadgen" sessions --url "http://127.0.0.1:$port/mcp" \
    --gateway-pid "$pid" --label "$tag" --sessions "$sessions" --concurrency "$concurrency" \
    --expect-tools "$tools" "${close_flag[@]}" 2> "$out/logs/$tag.loadgen.log") || {
    echo "the sessions run failed ($tag):" >&2
    tail -n 20 "$out/logs/$tag.loadgen.log" >&2
    exit 1
  }
  # The run's line, with the case and the RSS after start.
  echo "${line%\}},\"tools\":$tools,\"rep\":$rep,\"connections\":\"$connections\",\"rss_start_kib\":$start_kib,\"rss_anon_start_kib\":$start_anon_kib}" >> "$runs"
  stop_pid "$pid"
  local kept=()
  for p in "${started[@]}"; do
    [ "$p" = "$pid" ] || kept+=("$p")
  done
  started=("${kept[@]}")
  if [ "${RSS_KEEP_DATA:-0}" != 1 ]; then
    rm -rf "$out/gw/$tag/data"
  fi
}

echo "rss bench: cases ${cases[*]}, $reps rep(s), concurrency $concurrency; output $out" >&2
for rep in $(seq "$reps"); do
  for c in "${cases[@]}"; do
    tools=${c%%x*} sessions=${c#*x} closed=
    if [[ $sessions == *-closed ]]; then
      sessions=${sessions%-closed} closed=-closed
    fi
    echo "rep $rep: $tools tools, $sessions sessions${closed:+ (connections closed)}" >&2
    run_case "$tools" "$sessions" "$rep" "$closed"
  done
done

# --- The table ----------------------------------------------------------------------------------
{
  echo "$(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' (src modified)'), capgate $capgate"
  echo "load: $(uptime)"
  echo
  echo "| tools | sessions | connections | rep | RSS after start MiB (anon) | RSS with sessions open MiB (anon) | peak RSS MiB | RSS after DELETE MiB | tools listed per session | list pages | connections open | open s |"
  echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  jq -r 'def mib: ./1024*10 | round / 10 | tostring;
    [(.tools|tostring), (.sessions|tostring), .connections, (.rep|tostring),
      "\(.rss_start_kib|mib) (\(.rss_anon_start_kib|mib))",
      "\(.rss_kib|mib) (\(.rss_anon_kib|mib))", (.peak_rss_kib|mib),
      (.rss_after_close_kib|mib), (.tools_listed_min|tostring), (.list_pages|tostring),
      (.connections_open|tostring), (.open_seconds*10|round/10|tostring)]
    | "| " + join(" | ") + " |"' "$runs"
  # Increments, from the first repetition's cases that differ in one dimension only.
  jq -rs '
    def run(t; s; c): map(select(.tools == t and .sessions == s and .connections == c
      and .rep == 1)) | first;
    def kib(x): (x * 10 | round) / 10 | tostring;
    run(1000; 1; "open") as $a | run(1000; 1000; "open") as $b | run(10; 1000; "open") as $c
    | run(1000; 1000; "closed") as $d
    | "",
      if $a and $b then
        "per session (1,000 tools, connection open): (RSS at 1,000 sessions - RSS at 1) / 999 = \(kib(($b.rss_kib - $a.rss_kib) / 999)) KiB (anon \(kib(($b.rss_anon_kib - $a.rss_anon_kib) / 999)) KiB)"
      else empty end,
      if $a and $d then
        "per session (1,000 tools, connection closed): \(kib(($d.rss_kib - $a.rss_kib) / 999)) KiB (anon \(kib(($d.rss_anon_kib - $a.rss_anon_kib) / 999)) KiB)"
      else empty end,
      if $b and $c then
        "per tool, after start: (RSS at 1,000 tools - RSS at 10) / 990 = \(kib(($b.rss_start_kib - $c.rss_start_kib) / 990)) KiB (anon \(kib(($b.rss_anon_start_kib - $c.rss_anon_start_kib) / 990)) KiB); with 1,000 sessions open: \(kib(($b.rss_kib - $c.rss_kib) / 990)) KiB"
      else empty end' "$runs"
} | tee "$out/table.md"
