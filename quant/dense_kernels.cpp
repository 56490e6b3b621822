#include "quant/dense_kernels.h"

#include <cmath>
#include <vector>

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

// bf16 without the zero-extension: a 32-byte load holds 16 bf16 weights as
// eight 32-bit words, the even column in each word's low half and the odd
// column in its high half. `word << 16` is the even weights as f32 and
// `word & 0xffff0000` the odd ones: two operations per 16 weights, where
// zero-extending takes a shuffle and a shift per 8 (on a Zen 1 that
// widening, not the FMAs, bounded the kernel at one or two tokens: 2.4
// multiply-adds per cycle of 8 at one token; 1.6-1.8x that now). The
// activations are deinterleaved to match, once per call: per 16-column
// chunk, the 8 even columns and then the 8 odd ones (Bf16Lanes).
//
// Every (row, token) pair sums even columns into one accumulator and odd
// columns into another over whole 16-column chunks, adds the two, reduces
// the eight lanes, then adds the tail columns (cols % 16) one by one in
// order; none of this depends on the block shape, so a token's result is the
// same in any batch.
class Bf16Lanes {
 public:
  MOEC_AVX2 Bf16Lanes(const float* x, int64_t x_stride, int64_t tokens, int64_t cols) : cols_(cols) {
    thread_local std::vector<float> buffer;
    buffer.resize(size_t(tokens * cols));
    data_ = buffer.data();
    const int64_t chunks = cols / 16;
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t k = 0; k < chunks; ++k) {
        const float* src = x + t * x_stride + 16 * k;
        const __m256 lo = _mm256_loadu_ps(src), hi = _mm256_loadu_ps(src + 8);
        // shuffle_ps picks within 128-bit lanes: evens of (lo, hi) as
        // lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6, then a 64-bit permute restores
        // column order 0 2 4 6 | 8 10 12 14.
        const __m256 even = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
        const __m256 odd = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
        float* dst = data_ + t * cols + 16 * k;
        _mm256_storeu_ps(dst, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), 0xD8)));
        _mm256_storeu_ps(dst + 8, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(odd), 0xD8)));
      }
  }
  const float* token(int64_t t) const { return data_ + t * cols_; }

 private:
  int64_t cols_;
  float* data_;
};

// The eight-lane sums of four vectors at once, lane k of the result for v_k:
// ((v0+v1)+(v2+v3)) + ((v4+v5)+(v6+v7)) for every one of them (a pair alone
// is reduced as four copies of itself: the same operations).
MOEC_AVX2 inline __m128 reduce4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

// R rows from row r times T tokens (lanes row t0 onwards), R·T = 4 or 1, as
// described above.
template <int R, int T, bool Prefetch = false>
MOEC_AVX2 void bf16_block_avx2(const DenseRows& w, int64_t r, const Bf16Lanes& lanes, int64_t t0, const float* x,
                               int64_t x_stride, float* y, int64_t y_stride) {
  const int64_t n = w.cols;
  const uint16_t* base = static_cast<const uint16_t*>(w.data) + r * n;
  const __m256i high = _mm256_set1_epi32(int32_t(0xffff0000u));
  __m256 e[R][T], o[R][T];
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) e[i][t] = o[i][t] = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 16 <= n; c += 16) {
    __m256 xe[T], xo[T];  // in registers when R > 1, so each load serves R rows
    for (int t = 0; t < T; ++t) {
      xe[t] = _mm256_loadu_ps(lanes.token(t0 + t) + c);
      xo[t] = _mm256_loadu_ps(lanes.token(t0 + t) + c + 8);
    }
    if constexpr (Prefetch) {  // rows r+4 .. r+4+R-1 (the next block of four), in order: R·32 bytes per step
      const char* next = reinterpret_cast<const char*>(base + 4 * n) + R * 2 * c;
      for (int line = 0; line < (R + 1) / 2; ++line) _mm_prefetch(next + 64 * line, _MM_HINT_T0);
    }
    for (int i = 0; i < R; ++i) {
      const __m256i words = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + i * n + c));
      const __m256 we = _mm256_castsi256_ps(_mm256_slli_epi32(words, 16));
      const __m256 wo = _mm256_castsi256_ps(_mm256_and_si256(words, high));
      for (int t = 0; t < T; ++t) {
        e[i][t] = _mm256_fmadd_ps(we, xe[t], e[i][t]);
        o[i][t] = _mm256_fmadd_ps(wo, xo[t], o[i][t]);
      }
    }
  }
  static_assert(R * T == 4 || R * T == 1);
  __m256 v[4];
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) v[i * T + t] = _mm256_add_ps(e[i][t], o[i][t]);
  if constexpr (R * T == 1) v[1] = v[2] = v[3] = v[0];
  alignas(16) float sums[4];
  _mm_store_ps(sums, reduce4(v[0], v[1], v[2], v[3]));
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) {
      float s = sums[i * T + t];
      for (int64_t k = c; k < n; ++k) s = std::fma(bf16_to_f32(base[i * n + k]), x[(t0 + t) * x_stride + k], s);
      y[(t0 + t) * y_stride + r + i] = s;
    }
}

// The block with or without prefetching the next block's rows.
template <int R, int T>
MOEC_AVX2 void bf16_block_avx2(bool prefetch, const DenseRows& w, int64_t r, const Bf16Lanes& lanes, int64_t t0,
                               const float* x, int64_t x_stride, float* y, int64_t y_stride) {
  if (prefetch)
    bf16_block_avx2<R, T, true>(w, r, lanes, t0, x, x_stride, y, y_stride);
  else
    bf16_block_avx2<R, T, false>(w, r, lanes, t0, x, x_stride, y, y_stride);
}

// Rows four at a time; per block of rows, tokens four at a time (1 row × 4
// tokens), then a pair (2 × 2 twice), then one (4 rows × 1): the block's rows
// stay in L1 across its token groups.
MOEC_AVX2 void product_bf16_avx2(const DenseRows& w, const float* x, int64_t x_stride, int64_t tokens, float* y,
                                 int64_t y_stride) {
  const Bf16Lanes lanes(x, x_stride, tokens, w.cols);
  int64_t r = 0;
  for (; r + 4 <= w.rows; r += 4) {
    // The first token group prefetches the next block's rows (weights
    // streaming from memory: 1.6x the tokens/s of `moec generate` on Zen 1).
    const bool more = r + 8 <= w.rows;
    int64_t t = 0;
    for (; t + 4 <= tokens; t += 4)
      for (int i = 0; i < 4; ++i) bf16_block_avx2<1, 4>(more && t == 0, w, r + i, lanes, t, x, x_stride, y, y_stride);
    if (tokens - t >= 2) {
      for (int i = 0; i < 4; i += 2)
        bf16_block_avx2<2, 2>(more && t == 0, w, r + i, lanes, t, x, x_stride, y, y_stride);
      t += 2;
    }
    if (t < tokens) bf16_block_avx2<4, 1>(more && t == 0, w, r, lanes, t, x, x_stride, y, y_stride);
  }
  for (; r < w.rows; ++r)
    for (int64_t t = 0; t < tokens; ++t) bf16_block_avx2<1, 1>(false, w, r, lanes, t, x, x_stride, y, y_stride);
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
  if (isa == Isa::Avx2) {
    if constexpr (D == DType::BF16)
      return product_bf16_avx2(w, x, x_stride, tokens, y, y_stride);
    else
      return product_avx2<D>(w, x, x_stride, tokens, y, y_stride);
  }
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
