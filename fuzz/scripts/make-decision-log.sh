#!/usr/bin/env bash
# Regenerates fuzz/fixtures/decision-log.db (and .pub, its checkpoint key's public half) from a
# real gateway: the embedded example configuration on a free port, the example case platform,
# and raw MCP requests from three actors (allowed, refused, replayed, listed), with a checkpoint
# every 8 records. Also leaves the MCP request bodies it sent in fuzz/corpus/http_front/.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --bins
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
root=$(pwd)
sed -e "s#^capabilities_dir = .*#capabilities_dir = \"$root/capabilities\"#" \
    -e "s#^policies_dir = .*#policies_dir = \"$root/policies\"#" \
    -e "s#^data_dir = .*#data_dir = \"$work/data\"#" \
    -e "s#secret_file = \"data/#secret_file = \"$work/data/#" \
    -e "s#127.0.0.1:8080#127.0.0.1:$port#g" capgate.toml > "$work/capgate.toml"
printf '\n[audit]\ncheckpoint_every_records = 8\n' >> "$work/capgate.toml"
PATH="$root/target/debug:$PATH" target/debug/capgate serve --config "$work/capgate.toml" 2> "$work/gateway.log" &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
token() { target/debug/capgate token --config "$work/capgate.toml" "$@"; }
alice=$(token --user alice --tenant acme --roles analyst --agent drafting-agent --run-id run-1)
risk=$(token --user alice --tenant acme --roles analyst --agent risk-agent)
carol=$(token --user carol --tenant globex --roles analyst --agent drafting-agent)
mkdir -p fuzz/corpus/http_front
n=0
post() { # token session body
  n=$((n + 1))
  printf '%s' "$3" > "fuzz/corpus/http_front/mcp-request-$n.json"
  curl -s -D "$work/headers" -o "$work/body" "http://127.0.0.1:$port/mcp" \
    -H "authorization: Bearer $1" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2025-11-25' \
    ${2:+-H "mcp-session-id: $2"} -d "$3"
}
session() {
  post "$1" "" '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"fuzz-seed","version":"1"}}}'
  local id; id=$(grep -i '^mcp-session-id:' "$work/headers" | tr -d '\r' | cut -d' ' -f2)
  post "$1" "$id" '{"jsonrpc":"2.0","method":"notifications/initialized"}'
  echo "$id"
}
call() { # token session id name args [meta]
  post "$1" "$2" "{\"jsonrpc\":\"2.0\",\"id\":$3,\"method\":\"tools/call\",\"params\":{\"name\":\"$4\",\"arguments\":$5${6:+,\"_meta\":$6}}}"
}
s=$(session "$alice")
post "$alice" "$s" '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
call "$alice" "$s" 2 case__read_case '{"case_id":"case-101"}'
call "$alice" "$s" 3 case__read_case '{"case_id":"case-201"}'
call "$alice" "$s" 4 case__search_evidence '{"case_id":"case-101","query":"invoice"}'
call "$alice" "$s" 5 case__create_notice_draft '{"case_id":"case-101","body":"Notice"}' '{"dev.capgate/idempotency-key":"k-1"}'
call "$alice" "$s" 6 case__create_notice_draft '{"case_id":"case-101","body":"Notice"}' '{"dev.capgate/idempotency-key":"k-1"}'
call "$alice" "$s" 7 case__delete_evidence '{"evidence_id":"ev-1001"}'
call "$alice" "$s" 8 case__no_such_tool '{}'
post "$alice" "$s" '{"jsonrpc":"2.0","id":9,"method":"resources/read","params":{"uri":"case://acme/cases/case-101"}}'
post "$alice" "$s" '{"jsonrpc":"2.0","id":10,"method":"prompts/get","params":{"name":"case__summarize_case","arguments":{"case_id":"case-101"}}}'
post "$alice" "$s" '{"jsonrpc":"2.0","id":11,"method":"resources/list"}'
r=$(session "$risk")
call "$risk" "$r" 12 case__propose_risk_update '{"case_id":"case-101","risk":"high"}' '{"dev.capgate/idempotency-key":"k-2"}'
call "$risk" "$r" 13 case__write_memory '{"scope":"tenant","sensitivity":"public"}' '{"dev.capgate/idempotency-key":"k-3"}'
c=$(session "$carol")
call "$carol" "$c" 14 case__read_case '{"case_id":"case-101"}'
post "$carol" "$c" '{"jsonrpc":"2.0","id":15,"method":"resources/read","params":{"uri":"case://acme/cases/case-101"}}'
post "$carol" "$c" '{"jsonrpc":"2.0","id":16,"method":"prompts/list"}'
call "$carol" "$c" 17 case__read_case '{"case_id":"case-201"}'
# Stopping the gateway signs the tail of the log.
kill -INT "$pid"; wait "$pid" || true
mkdir -p fuzz/fixtures
cp "$work/data/audit.db" fuzz/fixtures/decision-log.db
target/debug/capgate audit public-key --config "$work/capgate.toml" | tr -d '[:space:]' > fuzz/fixtures/decision-log.pub
target/debug/capgate audit verify --log "$root/fuzz/fixtures/decision-log.db" --public-key "$(cat fuzz/fixtures/decision-log.pub)"
