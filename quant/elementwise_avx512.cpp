// Compiled with the avx512 flags of quant/CMakeLists.txt; Eigen renamed so none
// of its instantiations here can replace the portable ones.
#include "quant/elementwise.h"
#define Eigen moec_eigen_avx512
#define MOEC_ELEMENTWISE(name) name##_avx512
#include "quant/elementwise_eigen.inc"
