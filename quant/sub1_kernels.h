// Fused CPU kernels over sub1 matrices (quant/sub1.h): decode a block of 16
// rows and multiply it with 1..N activation rows while the block's trits are
// in L1, never materializing more than one block.
//
// Layout and limits:
// - Work is split by blocks of 16 rows (the unit the codes can be entered
//   at); callers thread over blocks. Per block the kernel decodes the trits
//   into a thread-local byte buffer (16·cols + 64 bytes: the AVX-512 decoder
//   stores a whole 64-trit codeword at a time and lets the next one overwrite
//   the excess), then for each row turns trits into weights with a 3-entry
//   table lookup (vpermps) and accumulates dot products with four
//   accumulators per token, four tokens at a time.
// - Any shape: columns not a multiple of the vector width are handled with
//   masked loads (AVX-512) or a scalar tail.
// - Results depend only on the shape, not on the thread count or on how
//   tokens are grouped (each token's sum has the same order in every path).
// - Three implementations chosen at run time by the CPU: AVX-512 (F+BW), AVX2
//   (+FMA) and portable C++; tests run every one the CPU supports against the
//   scalar reference decoder followed by a dense product.
#pragma once
#include <cstdint>

#include "quant/sub1.h"

namespace moec {

enum class Sub1Isa { Portable, Avx2, Avx512 };
Sub1Isa sub1_best_isa();  // the best one this CPU runs
bool sub1_isa_supported(Sub1Isa isa);
const char* sub1_isa_name(Sub1Isa isa);

// y[t, r] = Σ_c W[r, c] · x[t, c] for t < tokens and the rows of blocks
// [block0, block0 + n_blocks).
void sub1_linear_blocks(const Sub1View& w, int64_t block0, int64_t n_blocks, const float* x, int64_t x_stride,
                        int64_t tokens, float* y, int64_t y_stride, Sub1Isa isa = sub1_best_isa());

// Rows of block b as f32 [rows_in_block(b), cols] (for large batches, which
// multiply a decoded block with a GEMM).
void sub1_dequantize_block(const Sub1View& w, int64_t b, float* out, Sub1Isa isa = sub1_best_isa());

}  // namespace moec
