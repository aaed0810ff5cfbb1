#!/usr/bin/env bash
# capgate's fuzz targets (fuzz/, cargo-fuzz and libFuzzer), one at a time.
#
#   bash scripts/fuzz.sh short [target...]   every target on the committed corpus, the same
#                                            FUZZ_SHORT_RUNS (2000) inputs from FUZZ_SHORT_SEED
#                                            (1), within FUZZ_SHORT_SECONDS (default 12):
#                                            regressions show (CI)
#   bash scripts/fuzz.sh long [target...]    the campaign: FUZZ_SECONDS (default 3600) per
#                                            target (or FUZZ_RUNS executions, within that),
#                                            growing fuzz/corpus-run/<target>
#   bash scripts/fuzz.sh list                the targets
#
# Never more than one fuzzer process runs (the machine is shared): targets run in sequence,
# each with -jobs=1. A crash leaves its input in fuzz/artifacts/<target>/ and fails the run;
# replay it with `fuzz/target/$TRIPLE/release/<target> <file>`. Each target's final libFuzzer
# statistics (executions, cov, ft) are appended to fuzz/target/stats.tsv.
#
# The stable toolchain builds cargo-fuzz targets with RUSTC_BOOTSTRAP=1. Targets are built
# without a sanitizer (capgate is safe Rust; libFuzzer still catches panics, overflow checks
# and debug assertions, which stay on), which roughly doubles executions per second.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-short}
shift || true
export RUSTC_BOOTSTRAP=1
triple=$(rustc -vV | sed -n 's/^host: //p')
build_flags=(--sanitizer none --debug-assertions)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

if [ "$mode" = list ]; then
  cargo fuzz list
  exit 0
fi
case "$mode" in
  short) seconds=${FUZZ_SHORT_SECONDS:-12} ;;
  long) seconds=${FUZZ_SECONDS:-3600} ;;
  *) echo "usage: $0 short|long|list [target...]" >&2; exit 2 ;;
esac

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
  cargo fuzz build "${build_flags[@]}"
else
  # Only the targets asked for are built (each links the whole gateway).
  for target in "${targets[@]}"; do
    cargo fuzz build "${build_flags[@]}" "$target"
  done
fi
root=$(pwd)

stats=fuzz/target/stats.tsv
mkdir -p fuzz/target
[ -f "$stats" ] || printf 'date\tmode\ttarget\tseconds\texecutions\tcov\tft\tcorpus\tresult\n' > "$stats"

failed=()
printf '%-18s %12s %8s %8s %8s  %s\n' target executions cov ft corpus result
for target in "${targets[@]}"; do
  bin="$root/fuzz/target/$triple/release/$target"
  committed="$root/fuzz/corpus/$target"
  mkdir -p "$committed" "$root/fuzz/artifacts/$target"
  if [ "$mode" = short ]; then
    # New inputs go to a scratch directory: the committed corpus stays as it is.
    work=$(mktemp -d)
  else
    work="$root/fuzz/corpus-run/$target"
    mkdir -p "$work"
  fi
  args=(-max_total_time="$seconds" -timeout=20 -rss_limit_mb=3072 -max_len=65536
        -print_final_stats=1 -artifact_prefix="$root/fuzz/artifacts/$target/")
  if [ -n "${FUZZ_RUNS:-}" ]; then
    # A number of executions instead of (well, within) the time budget.
    args+=(-runs="$FUZZ_RUNS")
  elif [ "$mode" = short ]; then
    # The same inputs on every machine: a fixed seed and number of executions (the time
    # budget only cuts it short on a slow machine), so that CI replays what passed here and
    # finds regressions, not new bugs at random.
    args+=(-seed="${FUZZ_SHORT_SEED:-1}" -runs="${FUZZ_SHORT_RUNS:-2000}")
  fi
  if [ -f "$root/fuzz/dicts/$target.dict" ]; then
    args+=(-dict="$root/fuzz/dicts/$target.dict")
  fi
  run_dir=$(mktemp -d)
  set +e
  if [ "$mode" = long ]; then
    # -jobs=1: one worker process, its output in fuzz-0.log.
    (cd "$run_dir" && "$bin" "${args[@]}" -jobs=1 "$work" "$committed" > launcher.log 2>&1)
    status=$?
    log="$run_dir/fuzz-0.log"
    grep -q 'Test unit written\|panicked' "$run_dir/launcher.log" 2>/dev/null && status=1
  else
    (cd "$run_dir" && "$bin" "${args[@]}" "$work" "$committed" > fuzz-0.log 2>&1)
    status=$?
    log="$run_dir/fuzz-0.log"
  fi
  set -e
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  done_line=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$done_line")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$done_line")
  corpus=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<< "$done_line")
  result=ok
  if [ "$status" -ne 0 ]; then
    result="FAILED (exit $status)"
    failed+=("$target")
    grep -E 'panicked at|Test unit written|SUMMARY|ERROR' "$log" | head -20 || true
  fi
  printf '%-18s %12s %8s %8s %8s  %s\n' "$target" "${executions:-?}" "${cov:-?}" "${ft:-?}" "${corpus:-?}" "$result"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$mode" "$target" "$seconds" \
    "${executions:-}" "${cov:-}" "${ft:-}" "${corpus:-}" "$result" >> "$stats"
  rm -rf "$run_dir"
  if [ "$mode" = short ]; then
    rm -rf "$work"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
