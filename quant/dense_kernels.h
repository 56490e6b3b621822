// Products of dense weight rows stored in their own dtype (bf16, f16, f32)
// with a few activation rows: the runtime's small-batch path (generation),
// where the weights stream from memory once and are widened in registers.
//
// Layout and limits: w is row-major [rows, cols] with leading dimension
// cols; x is [tokens, cols] with stride x_stride; y[t · y_stride + r]. Rows
// in blocks of four; per block, tokens four at a time (each widened weight
// vector serves all four, so a batch of 8 costs far less than 8 single
// tokens), then a pair, then one (its four rows share each load of x). Every
// token's sum has the same operations in the same order whatever the number
// of tokens, so a token's result does not depend on the batch it was in
// (tested bit for bit). Per ISA:
//   avx512  16 columns per step, two accumulators per row
//   avx2    bf16: 16 columns per step from one 32-byte load, split into
//           even and odd columns by a shift and a mask, one accumulator for
//           each (the activations deinterleaved to match once per call);
//           f16 (F16C) and f32: 8 columns per step, two accumulators per row
//   portable plain loops
// The ISAs round differently (their sums are ordered differently); each is
// tested against a double-precision reference.
#pragma once
#include <cstddef>
#include <cstdint>

#include "io/cpu_isa.h"
#include "io/dtype.h"

namespace moec {

struct DenseRows {
  DType dtype = DType::F32;  // BF16, F16 or F32
  const void* data = nullptr;
  int64_t rows = 0, cols = 0;
};

void dense_rows_product(const DenseRows& w, const float* x, int64_t x_stride, int64_t tokens, float* y,
                        int64_t y_stride, Isa isa = active_isa());

}  // namespace moec
