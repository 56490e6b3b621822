// Compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl (+ AVX2's flags,
// quant/CMakeLists.txt); Eigen renamed so none of its instantiations here can
// replace the portable ones.
#include "quant/gemm.h"
#define Eigen moec_eigen_avx512
#define MOEC_GEMM_FUNCTION gemm_f32_avx512
#include "quant/gemm_eigen.inc"
