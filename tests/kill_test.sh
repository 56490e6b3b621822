#!/usr/bin/env bash
# Crash safety: kills moec convert / quantize / merge / distill with SIGKILL
# at random points and checks what is left. After every kill the output path
# is either absent (or still the previous complete output) or a complete
# output that `moec inspect` validates; never a partial one. A killed run may
# leave its temporary (OUT.moec-tmp-PID, which no reader opens); the next run
# for the same output removes it. Finally a full rerun must succeed and leave
# nothing but its output.
#
# usage: kill_test.sh MOEC MODEL CALIB_TEXT [RUNS] [COMMAND...]
set -euo pipefail
moec=$1 model=$2 calib=$3 runs=${4:-20}
shift 4 || shift $#
commands=("$@")
((${#commands[@]})) || commands=(convert quantize merge distill)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
RANDOM=1234  # the kill points are the same every run of the test
head -c 60000 "$calib" >"$work/calib.txt"  # tokenizing a whole corpus would dominate every run
calib=$work/calib.txt

run_command() {  # NAME: becomes (exec) the moec command for NAME writing $out; call it in a subshell
  case $1 in
    convert) exec "$moec" convert "$model" -o "$out" --force ;;
    quantize) exec "$moec" quantize "$model" -o "$out" --bits ternary --code sub1 --calib "$calib" --calib-windows 4 \
                --ctx 64 --force ;;
    merge) exec "$moec" merge "$model" -o "$out" --experts 4 --method merge-freq --calib "$calib" --calib-windows 4 \
             --ctx 64 --force ;;
    distill) exec "$moec" distill "$model" -o "$out" --width 64 --calib "$calib" --calib-windows 24 \
               --validation-windows 2 --layer-windows 4 --layer-epochs 1 --steps 2 --batch-windows 2 --ctx 32 \
               --curve-points 0 --force -q ;;
  esac
}

valid() { "$moec" inspect "$out" >/dev/null 2>&1; }
now_ms() { date +%s%3N; }

failures=0
for name in "${commands[@]}"; do
  case $name in convert | quantize) out=$work/$name.h5 ;; *) out=$work/$name-out ;; esac
  start=$(now_ms)
  (run_command "$name") >/dev/null 2>&1 || { echo "$name: the uninterrupted run failed"; exit 1; }
  duration=$(($(now_ms) - start))
  valid || { echo "$name: the uninterrupted run's output does not validate"; exit 1; }
  killed=0 finished=0 partial=0 leftovers=0
  for ((i = 0; i < runs; i++)); do
    ((i % 2 == 0)) && rm -rf "$out"  # half the runs write a new output, half replace a complete one
    had_output=0
    [ -e "$out" ] && had_output=1
    delay=$((RANDOM % (duration + duration / 10 + 1)))
    (run_command "$name") >/dev/null 2>&1 &
    pid=$!  # moec itself: the subshell exec'd it
    sleep "$(printf '0.%03d' $((delay % 1000)))"
    ((delay >= 1000)) && sleep $((delay / 1000))
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)  # Z: done, not yet reaped
    if [ -n "$state" ] && [ "$state" != Z ] && kill -KILL "$pid" 2>/dev/null; then
      killed=$((killed + 1))
    else
      finished=$((finished + 1))
    fi
    wait "$pid" 2>/dev/null || true
    if [ -e "$out" ]; then
      valid || { partial=$((partial + 1)); echo "$name run $i (killed after ${delay} ms): $out is not a valid output"; }
    elif ((had_output)); then
      if [[ $out == *.h5 ]]; then  # rename() replaces a file atomically: it can never be missing
        partial=$((partial + 1)); echo "$name run $i: the previous output was lost"
      else  # a folder being replaced is moved aside for an instant; the next run puts it back
        (run_command "$name") >/dev/null 2>&1 || true
        valid || { partial=$((partial + 1)); echo "$name run $i: the previous output was lost"; }
      fi
    fi
    leftovers=$((leftovers + $(find "$work" -maxdepth 1 -name "$(basename "$out").moec-*" | wc -l)))
  done
  (run_command "$name") >/dev/null 2>&1 || { echo "$name: rerun after the kills failed"; exit 1; }
  valid || { echo "$name: rerun's output does not validate"; exit 1; }
  stray=$(find "$work" -maxdepth 1 -name "$(basename "$out").moec-*" | wc -l)
  printf '%-8s %2d runs (%d ms uninterrupted): %2d killed, %2d finished, %d partial outputs, %d temporaries seen, %d left after the rerun\n' \
    "$name" "$runs" "$duration" "$killed" "$finished" "$partial" "$leftovers" "$stray"
  ((partial == 0 && stray == 0)) || failures=$((failures + 1))
done
exit $((failures > 0))
