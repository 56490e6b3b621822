#!/usr/bin/env bash
# The per-ISA GEMM and element-wise objects (quant/{gemm,elementwise}_avx{2,512}.cpp) are
# compiled with -mavx2/-mavx512*; any weak symbol they define outside their
# own renamed Eigen namespace could be picked by the linker for the portable
# path too and crash a CPU without those instructions. Arguments: object files.
set -euo pipefail
checked=0
for object in "$@"; do
  case "$object" in *gemm_avx2.cpp.o|*gemm_avx512.cpp.o|*elementwise_avx2.cpp.o|*elementwise_avx512.cpp.o) ;; *) continue ;; esac
  checked=$((checked + 1))
  leaked=$(nm -C --defined-only "$object" | awk '$2 == "W" || $2 == "V" || $2 == "u"' |
           grep -v -e 'moec_eigen_avx' -e 'DW.ref.__gxx_personality_v0' || true)
  if [ -n "$leaked" ]; then
    echo "$object defines weak symbols outside its namespace:"
    echo "$leaked"
    exit 1
  fi
done
[ "$checked" -gt 0 ] || { echo "no per-ISA objects given"; exit 1; }
echo "$checked per-ISA objects: no shared weak symbols"
