#!/usr/bin/env bash
# Runs moec's libFuzzer targets (tests/fuzz/README.md) and prints one line per
# target: executions, speed, coverage (edges), corpus size, findings.
#   scripts/fuzz.sh [--seconds N | --runs N] [--jobs J] [--seed S] [TARGET...]
# Default: every target for 60 s. Builds $MOEC_BUILD_DIR (build-fuzz) with
# clang, -DMOEC_FUZZ=ON, when it is not configured yet. Each target starts from
# the committed corpus (tests/fuzz/corpus/TARGET, read only) plus what earlier
# runs found ($build/fuzz-corpus/TARGET); crashes, leaks, timeouts (> 1 s per
# input) and out-of-memory (> 512 MB) are written to $build/fuzz-findings/
# and make the script fail. Add each finding, once fixed, to the committed
# corpus as tests/fuzz/corpus/TARGET/regress-NAME.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${MOEC_BUILD_DIR:-build-fuzz}
limit=(-max_total_time=60)
jobs=1
seed=()  # libFuzzer's default: a new random seed each run
targets=()
while (($#)); do
  case $1 in
    --seconds) limit=(-max_total_time="$2"); shift 2 ;;
    --runs) limit=(-runs="$2"); shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --seed) seed=(-seed="$2"); shift 2 ;;  # CI: the same mutations every run
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || targets=(safetensors config shard_index container tensor_view tokenizer tokenizer_json request chat_template)
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -G Ninja -DMOEC_FUZZ=ON -DMOEC_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang >/dev/null
fi
cmake --build "$build" --target "${targets[@]/%/_fuzz}" >/dev/null
mkdir -p "$build/fuzz-findings" "$build/fuzz-logs"
# quarantine_size_mb: ASan's default quarantine (256 MB of freed memory kept
# back) alone would use half of the 512 MB limit over a long run.
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:quarantine_size_mb=64 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp
status=0
printf '%-15s %12s %9s %7s %7s %7s %s\n' target executions exec/s edges features corpus findings
for t in "${targets[@]}"; do
  work=$build/fuzz-corpus/$t
  log=$build/fuzz-logs/$t.log
  mkdir -p "$work"
  dict=()
  [ -f "tests/fuzz/dict/$t.dict" ] && dict=(-dict="tests/fuzz/dict/$t.dict")
  parallel=()
  ((jobs > 1)) && parallel=(-fork="$jobs")  # several processes share one corpus
  rc=0
  "$build/tests/fuzz/${t}_fuzz" "$work" "tests/fuzz/corpus/$t" "${dict[@]}" "${limit[@]}" "${parallel[@]}" "${seed[@]}" \
    -rss_limit_mb=512 -malloc_limit_mb=512 -timeout=1 -print_final_stats=1 \
    -artifact_prefix="$build/fuzz-findings/$t-" >"$log" 2>&1 || rc=$?
  execs=$(awk '/stat::number_of_executed_units/ {s += $2} END {print s + 0}' "$log")
  speed=$(awk '/stat::average_exec_per_sec/ {s += $2} END {print s + 0}' "$log")
  last=$(grep -hE '^#[0-9]+' "$log" | tail -1 || true)
  edges=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  features=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corpus=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")
  findings=$(find "$build/fuzz-findings" -name "$t-*" -type f | wc -l)
  printf '%-15s %12s %9s %7s %7s %7s %s\n' "$t" "$execs" "$speed" "${edges:-?}" "${features:-?}" "$corpus" "$findings"
  if ((rc != 0)); then
    status=1
    { grep -hE 'ERROR|SUMMARY|runtime error|escaped' "$log" || true; } | head -5 | sed 's/^/    /'
  fi
done
exit $status
