#include "quant/dense_kernels.h"

#include <cmath>

#include "io/error.h"
#include "io/x86_simd.h"

namespace moec {
namespace {

// ---- portable ---------------------------------------------------------------

template <DType D>
float widen_one(const void* w, int64_t i) {
  if constexpr (D == DType::BF16) return bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
  if constexpr (D == DType::F16) return f16_to_f32(static_cast<const uint16_t*>(w)[i]);
  if constexpr (D == DType::F32) return static_cast<const float*>(w)[i];
  return 0.0f;
}

template <DType D>
void product_portable(const DenseRows& w, const float* x, int64_t x_stride, int64_t tokens, float* y,
                      int64_t y_stride) {
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t t = 0; t < tokens; ++t) {
      const float* xt = x + t * x_stride;
      float s[4] = {0, 0, 0, 0};
      int64_t c = 0;
      for (; c + 4 <= w.cols; c += 4)
        for (int k = 0; k < 4; ++k) s[k] += widen_one<D>(w.data, r * w.cols + c + k) * xt[c + k];
      float sum = (s[0] + s[1]) + (s[2] + s[3]);
      for (; c < w.cols; ++c) sum = std::fma(widen_one<D>(w.data, r * w.cols + c), xt[c], sum);
      y[t * y_stride + r] = sum;
    }
}

#if defined(__x86_64__)
// ---- AVX2 -------------------------------------------------------------------

#define MOEC_AVX2 __attribute__((target("avx2,fma,f16c")))

template <DType D>
MOEC_AVX2 inline __m256 load8(const void* w, int64_t i) {
  if constexpr (D == DType::BF16) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else if constexpr (D == DType::F16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i)));
  } else {
    return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  }
}

MOEC_AVX2 inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// R rows starting at row r times T tokens: every (row, token) pair has two
// accumulators over 16-column steps (even and odd 8-column halves), an
// 8-column step into the first, then a scalar tail. The pair's operations and
// their order do not depend on R or T, so a token's result is the same in
// any batch. R·T = 4 keeps 8 independent FMA chains in flight (enough to hide
// the FMA latency) in 8 + 2R registers.
template <DType D, int R, int T>
MOEC_AVX2 void block_avx2(const DenseRows& w, int64_t r, const float* x, int64_t x_stride, float* y,
                          int64_t y_stride) {
  __m256 a[R][T][2];
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) a[i][t][0] = a[i][t][1] = _mm256_setzero_ps();
  const int64_t n = w.cols;
  int64_t c = 0;
  for (; c + 16 <= n; c += 16)
    for (int i = 0; i < R; ++i) {
      const __m256 w0 = load8<D>(w.data, (r + i) * n + c), w1 = load8<D>(w.data, (r + i) * n + c + 8);
      for (int t = 0; t < T; ++t) {
        a[i][t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + t * x_stride + c), a[i][t][0]);
        a[i][t][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + t * x_stride + c + 8), a[i][t][1]);
      }
    }
  if (c + 8 <= n) {
    for (int i = 0; i < R; ++i) {
      const __m256 w0 = load8<D>(w.data, (r + i) * n + c);
      for (int t = 0; t < T; ++t) a[i][t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + t * x_stride + c), a[i][t][0]);
    }
    c += 8;
  }
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) {
      float s = hsum8(_mm256_add_ps(a[i][t][0], a[i][t][1]));
      for (int64_t k = c; k < n; ++k) s = std::fma(widen_one<D>(w.data, (r + i) * n + k), x[t * x_stride + k], s);
      y[t * y_stride + r + i] = s;
    }
}

// Rows four at a time; for each block of rows, tokens four at a time (1 row ×
// 4 tokens per pass), then a pair (2 × 2), then one (4 rows × 1): each
// widened weight serves up to four tokens while the block is in L1.
template <DType D>
MOEC_AVX2 void product_avx2(const DenseRows& w, const float* x, int64_t x_stride, int64_t tokens, float* y,
                            int64_t y_stride) {
  int64_t r = 0;
  for (; r + 4 <= w.rows; r += 4) {
    int64_t t = 0;
    for (; t + 4 <= tokens; t += 4)
      for (int i = 0; i < 4; ++i) block_avx2<D, 1, 4>(w, r + i, x + t * x_stride, x_stride, y + t * y_stride, y_stride);
    if (tokens - t >= 2) {
      block_avx2<D, 2, 2>(w, r, x + t * x_stride, x_stride, y + t * y_stride, y_stride);
      block_avx2<D, 2, 2>(w, r + 2, x + t * x_stride, x_stride, y + t * y_stride, y_stride);
      t += 2;
    }
    if (t < tokens) block_avx2<D, 4, 1>(w, r, x + t * x_stride, x_stride, y + t * y_stride, y_stride);
  }
  for (; r < w.rows; ++r)
    for (int64_t t = 0; t < tokens; ++t) block_avx2<D, 1, 1>(w, r, x + t * x_stride, x_stride, y + t * y_stride, y_stride);
}

// ---- AVX-512 ----------------------------------------------------------------

#define MOEC_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")))

template <DType D>
MOEC_AVX512 inline __m512 load16(const void* w, int64_t i) {
  if constexpr (D == DType::BF16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  } else if constexpr (D == DType::F16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i)));
  } else {
    return _mm512_loadu_ps(static_cast<const float*>(w) + i);
  }
}

// As block_avx2, 16 lanes: 32-column steps, a 16-column step, a scalar tail.
template <DType D, int R, int T>
MOEC_AVX512 void block_avx512(const DenseRows& w, int64_t r, const float* x, int64_t x_stride, float* y,
                              int64_t y_stride) {
  __m512 a[R][T][2];
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) a[i][t][0] = a[i][t][1] = _mm512_setzero_ps();
  const int64_t n = w.cols;
  int64_t c = 0;
  for (; c + 32 <= n; c += 32)
    for (int i = 0; i < R; ++i) {
      const __m512 w0 = load16<D>(w.data, (r + i) * n + c), w1 = load16<D>(w.data, (r + i) * n + c + 16);
      for (int t = 0; t < T; ++t) {
        a[i][t][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + t * x_stride + c), a[i][t][0]);
        a[i][t][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + t * x_stride + c + 16), a[i][t][1]);
      }
    }
  if (c + 16 <= n) {
    for (int i = 0; i < R; ++i) {
      const __m512 w0 = load16<D>(w.data, (r + i) * n + c);
      for (int t = 0; t < T; ++t) a[i][t][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + t * x_stride + c), a[i][t][0]);
    }
    c += 16;
  }
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) {
      float s = _mm512_reduce_add_ps(_mm512_add_ps(a[i][t][0], a[i][t][1]));
      for (int64_t k = c; k < n; ++k) s = std::fma(widen_one<D>(w.data, (r + i) * n + k), x[t * x_stride + k], s);
      y[t * y_stride + r + i] = s;
    }
}

template <DType D>
MOEC_AVX512 void product_avx512(const DenseRows& w, const float* x, int64_t x_stride, int64_t tokens, float* y,
                                int64_t y_stride) {
  int64_t r = 0;
  for (; r + 4 <= w.rows; r += 4) {
    int64_t t = 0;
    for (; t + 4 <= tokens; t += 4)
      for (int i = 0; i < 4; ++i)
        block_avx512<D, 1, 4>(w, r + i, x + t * x_stride, x_stride, y + t * y_stride, y_stride);
    if (tokens - t >= 2) {
      block_avx512<D, 2, 2>(w, r, x + t * x_stride, x_stride, y + t * y_stride, y_stride);
      block_avx512<D, 2, 2>(w, r + 2, x + t * x_stride, x_stride, y + t * y_stride, y_stride);
      t += 2;
    }
    if (t < tokens) block_avx512<D, 4, 1>(w, r, x + t * x_stride, x_stride, y + t * y_stride, y_stride);
  }
  for (; r < w.rows; ++r)
    for (int64_t t = 0; t < tokens; ++t)
      block_avx512<D, 1, 1>(w, r, x + t * x_stride, x_stride, y + t * y_stride, y_stride);
}
#endif  // __x86_64__

template <DType D>
void product(const DenseRows& w, const float* x, int64_t x_stride, int64_t tokens, float* y, int64_t y_stride,
             Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512) return product_avx512<D>(w, x, x_stride, tokens, y, y_stride);
  if (isa == Isa::Avx2) return product_avx2<D>(w, x, x_stride, tokens, y, y_stride);
#endif
  (void)isa;
  product_portable<D>(w, x, x_stride, tokens, y, y_stride);
}

}  // namespace

void dense_rows_product(const DenseRows& w, const float* x, int64_t x_stride, int64_t tokens, float* y,
                        int64_t y_stride, Isa isa) {
  switch (w.dtype) {
    case DType::BF16: return product<DType::BF16>(w, x, x_stride, tokens, y, y_stride, isa);
    case DType::F16: return product<DType::F16>(w, x, x_stride, tokens, y, y_stride, isa);
    case DType::F32: return product<DType::F32>(w, x, x_stride, tokens, y, y_stride, isa);
    default: fail("dense product: dtype {} is not a float weight type", dtype_name(w.dtype));
  }
}

}  // namespace moec
