#!/usr/bin/env bash
# Expert-parallel quantization (io/mpi_world.h, quantize/expert_exchange.h):
# `mpirun -np 2 moec quantize --threads 1` must write the same tensors as one
# process with 2 threads (h5diff over /tensors: every code, scale and
# dictionary equal; 20 windows make three batches, split across the ranks),
# for GPTQ sub1 and for 4-bit packed codes, and a moec
# command other than quantize must refuse to run under mpirun.
#
# usage: mpi_test.sh MOEC MODEL CALIB_TEXT
set -euo pipefail
moec=$1 model=$2 calib=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c 200000 "$calib" >"$work/calib.txt"
# Root in containers and CI; more ranks than cores where there are few.
mpirun=(mpirun --allow-run-as-root --oversubscribe -np 2)

for spec in "--bits ternary --code sub1" "--bits 4 --group 128"; do
  # shellcheck disable=SC2086
  args=(quantize "$model" --calib "$work/calib.txt" --calib-windows 20 --ctx 64 $spec --force)
  "$moec" "${args[@]}" -o "$work/one.h5" --threads 2 >"$work/one.log"
  "${mpirun[@]}" "$moec" "${args[@]}" -o "$work/two.h5" --threads 1 >"$work/two.log"
  h5diff "$work/one.h5" "$work/two.h5" /tensors /tensors || { echo "mpi_test: $spec: tensors differ"; exit 1; }
  grep -q "experts:" "$work/two.log" || { echo "mpi_test: $spec: rank 0 printed no report"; exit 1; }
  [ "$(grep -c "experts:" "$work/two.log")" = 1 ] || { echo "mpi_test: $spec: more than one rank reported"; exit 1; }
  echo "mpi_test: $spec: identical tensors from 1 process x 2 threads and 2 ranks x 1 thread"
done

if "${mpirun[@]}" "$moec" eval "$model" --text "$work/calib.txt" >"$work/eval.log" 2>&1; then
  echo "mpi_test: eval under mpirun should have been refused"; exit 1
fi
grep -q "only quantize runs under mpirun" "$work/eval.log" || { cat "$work/eval.log"; exit 1; }
echo "mpi_test: ok"
