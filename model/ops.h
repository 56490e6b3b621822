// Small element-wise pieces of the forward pass, in f32 as Hugging Face's
// Mixtral computes them.
#pragma once
#include <cstdint>
#include <span>

namespace moec {

class ThreadPool;

// out[i] = weight[i] * x[i] / sqrt(mean(x²) + eps), for each of `rows` rows.
void rms_norm(const float* x, int64_t rows, int64_t dim, const float* weight, float eps, float* out);
// In place: a[i] = silu(a[i]) * b[i].
void silu_mul(float* a, const float* b, int64_t n);
// silu_mul over `rows` rows of `dim` values on every thread, one row per
// call: the exp kernel rounds a buffer's tail differently, so a row's result
// must not depend on where it lands in the batch (or in a chunk).
void silu_mul_rows(ThreadPool& pool, float* a, const float* b, int64_t rows, int64_t dim);
// x[i] += y[i] for n values, on every thread.
void add_into(ThreadPool& pool, float* x, const float* y, int64_t n);
// Rows per chunk of the element-wise steps: ~8k values, a few microseconds of
// work, well above the cost of handing a chunk to a thread.
int64_t rows_per_chunk(int64_t dim);
// In place softmax of one row, max-subtracted.
void softmax(float* x, int64_t n);
// log Σ exp(x[i]), computed stably.
float log_sum_exp(const float* x, int64_t n);

}  // namespace moec
