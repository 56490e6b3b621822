// Compiled with -mavx2 -mfma -mf16c (quant/CMakeLists.txt); Eigen renamed so
// none of its instantiations here can replace the portable ones.
#include "quant/gemm.h"
#define Eigen moec_eigen_avx2
#define MOEC_GEMM_FUNCTION gemm_f32_avx2
#include "quant/gemm_eigen.inc"
