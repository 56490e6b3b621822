// f32 matrix products for the runtime's large batches and attention, in the
// best instruction set this CPU has (io/cpu_isa.h).
//
// Eigen's GEMM is the engine. It is compiled three times: plain x86-64,
// -mavx2 -mfma and -mavx512*; each copy in its own translation unit with
// Eigen's namespace renamed (`#define Eigen moec_eigen_<isa>`), so the
// linker can never hand an AVX-512 instantiation of an Eigen template to the
// portable path (one definition per name, chosen arbitrarily among copies
// built with different flags, is how "one binary" builds crash on older
// CPUs). tests/isa_symbols_test.sh checks that those objects define no weak
// symbol outside their own namespace.
#pragma once
#include <cstdint>

#include "io/cpu_isa.h"

namespace moec {

// C[m, n] = alpha · op(A) · op(B) (or += with accumulate), all row-major f32 with leading dimensions
// lda/ldb/ldc. op(A) is A [m, k], or Aᵀ of A [k, m] when a_transposed; op(B)
// is B [k, n], or Bᵀ of B [n, k] when b_transposed.
struct GemmProblem {
  int64_t m = 0, n = 0, k = 0;
  const float* a = nullptr;
  int64_t lda = 0;
  bool a_transposed = false;
  const float* b = nullptr;
  int64_t ldb = 0;
  bool b_transposed = false;
  float* c = nullptr;
  int64_t ldc = 0;
  float alpha = 1.0f;
  bool accumulate = false;  // C += alpha · op(A) · op(B) instead of C =
};

void gemm_f32(const GemmProblem& p, Isa isa = active_isa());

// The common row-major case as one call: C[m, n] (ld ldc) = alpha · A[m, k]
// (ld lda) · op(B), or += with accumulate; op(B) is B [k, n], or Bᵀ of
// B [n, k] when b_transposed (ld ldb).
void gemm_f32(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, bool b_transposed,
              int64_t m, int64_t n, int64_t k, float alpha = 1.0f, bool accumulate = false);

namespace detail {
void gemm_f32_portable(const GemmProblem& p);
void gemm_f32_avx2(const GemmProblem& p);
void gemm_f32_avx512(const GemmProblem& p);
}  // namespace detail

}  // namespace moec
