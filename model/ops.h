// Small element-wise pieces of the forward pass, in f32 as Hugging Face's
// Mixtral computes them.
#pragma once
#include <cstdint>
#include <span>

namespace moec {

// out[i] = weight[i] * x[i] / sqrt(mean(x²) + eps), for each of `rows` rows.
void rms_norm(const float* x, int64_t rows, int64_t dim, const float* weight, float eps, float* out);
// In place: a[i] = silu(a[i]) * b[i].
void silu_mul(float* a, const float* b, int64_t n);
// In place softmax of one row, max-subtracted.
void softmax(float* x, int64_t n);
// log Σ exp(x[i]), computed stably.
float log_sum_exp(const float* x, int64_t n);

}  // namespace moec
