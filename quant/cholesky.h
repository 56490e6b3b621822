// In-place f32 factorizations for GPTQ's Hessians.
//
// Mixtral's w2 has 14336 inputs: its Hessian is 822 MB in f32 (1.6 GB in
// double), and the textbook route — H⁻¹ by a solve against the identity,
// then the Cholesky factor of H⁻¹ — holds four or five such matrices at
// once. Here everything happens inside the one buffer the Hessian arrived
// in, blocked (128) so that nearly all arithmetic is gemm_f32 in the CPU's
// best ISA; only the 128² diagonal blocks go through Eigen directly.
//
// Layout: a is n × n, row-major (for the symmetric H either reading works).
#pragma once
#include <cstdint>
#include <vector>

namespace moec {

// a (symmetric; its lower triangle is read) := L with a = L·Lᵀ, lower
// triangular, the strict upper triangle zeroed. False when a is not
// (numerically) positive definite; a is then partly overwritten.
bool cholesky_lower_in_place(float* a, int64_t n);

// a (lower triangular, upper zero) := a⁻¹ (lower triangular).
void invert_lower_in_place(float* a, int64_t n);

// a := a[p, p] (new a[i][j] = old a[p[i]][p[j]]) for a permutation p,
// following p's cycles with one row of scratch.
void permute_symmetric_in_place(float* a, int64_t n, const std::vector<int64_t>& p);

// a (symmetric positive definite H) := U, upper triangular with
// H⁻¹ = Uᵀ·U: GPTQ's "Cholesky factor of the inverse Hessian". With J the
// reversal permutation, J·H·J = L·Lᵀ gives H = R·Rᵀ for the upper R = J·L·J,
// so H⁻¹ = (R⁻¹)ᵀ·R⁻¹ and U = R⁻¹ = J·L⁻¹·J: one Cholesky and one
// triangular inverse (2n³/3 flops) instead of inverse + Cholesky (≈ 5n³/3),
// and J·A·J of a row-major matrix is its buffer reversed. False when H is
// not positive definite.
bool inverse_upper_factor_in_place(float* a, int64_t n);

}  // namespace moec
