#include "quant/sub1_kernels.h"

#include <cmath>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "io/error.h"

namespace moec {
namespace {

constexpr int64_t kSlack = 64;  // decode buffer bytes past the block's trits
constexpr int kTokenGroup = 4;  // tokens sharing one pass over a row's trits

uint8_t* block_buffer(const Sub1View& w) {
  thread_local std::vector<uint8_t> buffer;
  const size_t need = size_t(kSub1BlockRows * w.cols + kSlack);
  if (buffer.size() < need) buffer.resize(need);
  return buffer.data();
}

// ---- portable ---------------------------------------------------------------

// Each token's sum: four partial sums over columns c ≡ 0, 1, 2, 3 (mod 4),
// added as (s0 + s1) + (s2 + s3).
void dot_rows_portable(const uint8_t* trits, const float level[3], const float* x, int64_t x_stride,
                       int64_t tokens, int64_t cols, float* y, int64_t y_stride) {
  for (int64_t t = 0; t < tokens; ++t) {
    const float* xt = x + t * x_stride;
    float s[4] = {0, 0, 0, 0};
    for (int64_t c = 0; c < cols; ++c) s[c & 3] += level[trits[c]] * xt[c];
    y[t * y_stride] = (s[0] + s[1]) + (s[2] + s[3]);
  }
}

void linear_block_portable(const Sub1View& w, int64_t b, const float* x, int64_t x_stride, int64_t tokens, float* y,
                           int64_t y_stride) {
  uint8_t* trits = block_buffer(w);
  decode_sub1_block(w, b, trits);
  for (int64_t i = 0; i < w.rows_in_block(b); ++i) {
    const int64_t r = b * kSub1BlockRows + i;
    const float level[3] = {w.low(r), 0.0f, w.high(r)};
    dot_rows_portable(trits + i * w.cols, level, x, x_stride, tokens, w.cols, y + r, y_stride);
  }
}

#if defined(__x86_64__)
// ---- AVX2 -------------------------------------------------------------------

#define MOEC_AVX2 __attribute__((target("avx2,fma")))

MOEC_AVX2 inline __m256 weights8(const uint8_t* trits, __m256 table) {
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(trits));
  return _mm256_permutevar8x32_ps(table, _mm256_cvtepu8_epi32(bytes));
}

MOEC_AVX2 inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// Sums of G tokens: four accumulators each over 8-column chunks k ≡ 0..3
// (mod 4), a scalar tail, the same order for every G.
template <int G>
MOEC_AVX2 void dot_avx2(const uint8_t* trits, __m256 table, const float level[3], const float* x, int64_t x_stride,
                        int64_t cols, float* y, int64_t y_stride) {
  __m256 acc[G][4];
  for (int g = 0; g < G; ++g)
    for (int a = 0; a < 4; ++a) acc[g][a] = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 32 <= cols; c += 32)
    for (int a = 0; a < 4; ++a) {
      const __m256 wv = weights8(trits + c + 8 * a, table);
      for (int g = 0; g < G; ++g)
        acc[g][a] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + g * x_stride + c + 8 * a), acc[g][a]);
    }
  for (int a = 0; c + 8 <= cols; c += 8, ++a) {
    const __m256 wv = weights8(trits + c, table);
    for (int g = 0; g < G; ++g) acc[g][a] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + g * x_stride + c), acc[g][a]);
  }
  for (int g = 0; g < G; ++g) {
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(acc[g][0], acc[g][1]), _mm256_add_ps(acc[g][2], acc[g][3])));
    for (int64_t k = c; k < cols; ++k) s = std::fma(level[trits[k]], x[g * x_stride + k], s);  // fused in every path
    y[g * y_stride] = s;
  }
}

MOEC_AVX2 void linear_block_avx2(const Sub1View& w, int64_t b, const float* x, int64_t x_stride, int64_t tokens,
                                 float* y, int64_t y_stride) {
  uint8_t* trits = block_buffer(w);
  decode_sub1_block(w, b, trits);
  for (int64_t i = 0; i < w.rows_in_block(b); ++i) {
    const int64_t r = b * kSub1BlockRows + i;
    const float level[3] = {w.low(r), 0.0f, w.high(r)};
    const __m256 table = _mm256_setr_ps(level[0], 0.0f, level[2], 0.0f, 0.0f, 0.0f, 0.0f, 0.0f);
    const uint8_t* row = trits + i * w.cols;
    int64_t t = 0;
    for (; t + kTokenGroup <= tokens; t += kTokenGroup)
      dot_avx2<kTokenGroup>(row, table, level, x + t * x_stride, x_stride, w.cols, y + t * y_stride + r, y_stride);
    for (; t < tokens; ++t) dot_avx2<1>(row, table, level, x + t * x_stride, x_stride, w.cols, y + t * y_stride + r, y_stride);
  }
}

// ---- AVX-512 ----------------------------------------------------------------

#define MOEC_AVX512 __attribute__((target("avx512f,avx512bw,bmi")))

// Stores a codeword's 64 trits, built from its two bit masks, and returns
// its length; the next codeword's store overwrites what lies past it. The
// only loop-carried dependency of a decoding loop is pos += length.
MOEC_AVX512 inline int store_word(const uint64_t* masks, uint8_t* out, __m512i one, __m512i zero, __m512i two) {
  const uint64_t low = masks[0], high = masks[1];
  __m512i v = _mm512_mask_blend_epi8(low, one, zero);
  v = _mm512_mask_blend_epi8(high, v, two);
  _mm512_storeu_si512(out, v);
  return int(_tzcnt_u64(low & high));  // 64 when there is no end marker
}

MOEC_AVX512 void decode_block_avx512(const Sub1View& w, int64_t b, uint8_t* out) {
  const Sub1Codebook cb = w.codebook;
  const uint16_t* words = w.words + w.blocks[b];
  const int64_t n_words = int64_t(w.blocks[b + 1]) - int64_t(w.blocks[b]), n = w.rows_in_block(b) * w.cols;
  const __m512i one = _mm512_set1_epi8(1), zero = _mm512_setzero_si512(), two = _mm512_set1_epi8(2);
  int64_t pos = 0;
  for (int64_t k = 0; k < n_words && pos < n; ++k) pos += store_word(cb.masks + 2 * words[k], out + pos, one, zero, two);
  for (; pos < n; ++pos) out[pos] = 1;  // a short (malformed) stream: zeros
}

MOEC_AVX512 inline __m512 weights16(const uint8_t* trits, __m512 table) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(trits));
  return _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(bytes), table);
}

// Sums of G tokens: four accumulators each over 16-column chunks k ≡ 0..3
// (mod 4), the last partial chunk masked, then a fixed-order reduction.
template <int G>
MOEC_AVX512 void dot_avx512(const uint8_t* trits, __m512 table, const float* x, int64_t x_stride, int64_t cols,
                            float* y, int64_t y_stride) {
  __m512 acc[G][4];
  for (int g = 0; g < G; ++g)
    for (int a = 0; a < 4; ++a) acc[g][a] = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 64 <= cols; c += 64)
    for (int a = 0; a < 4; ++a) {
      const __m512 wv = weights16(trits + c + 16 * a, table);
      for (int g = 0; g < G; ++g)
        acc[g][a] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + g * x_stride + c + 16 * a), acc[g][a]);
    }
  for (int a = 0; c < cols; c += 16, ++a) {
    const __mmask16 m = cols - c >= 16 ? __mmask16(0xffff) : __mmask16((1u << (cols - c)) - 1);
    const __m512 wv = weights16(trits + c, table);  // past the row: buffer slack, times x = 0
    for (int g = 0; g < G; ++g)
      acc[g][a] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x + g * x_stride + c), acc[g][a]);
  }
  for (int g = 0; g < G; ++g)
    y[g * y_stride] =
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[g][0], acc[g][1]), _mm512_add_ps(acc[g][2], acc[g][3])));
}

MOEC_AVX512 __m512 level_table(const Sub1View& w, int64_t r) {
  return _mm512_setr_ps(w.low(r), 0.0f, w.high(r), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
}

// Decodes a block's stream a row at a time into a buffer of cols + 128
// bytes, so each row's trits are still in L1 when the dot products read them:
// the codeword that runs past the row's end leaves its excess (< 64 trits)
// behind the row, which is moved to the front for the next row.
MOEC_AVX512 void linear_block_avx512(const Sub1View& w, int64_t b, const float* x, int64_t x_stride, int64_t tokens,
                                     float* y, int64_t y_stride) {
  thread_local std::vector<uint8_t> buffer;
  if (buffer.size() < size_t(w.cols + 2 * kSlack)) buffer.resize(size_t(w.cols + 2 * kSlack));
  uint8_t* trits = buffer.data();
  const uint64_t* masks = w.codebook.masks;
  const uint16_t* word = w.words + w.blocks[b];
  const uint16_t* end = w.words + w.blocks[b + 1];
  const __m512i one = _mm512_set1_epi8(1), zero = _mm512_setzero_si512(), two = _mm512_set1_epi8(2);
  int64_t pos = 0;  // trits of the current row already in the buffer
  for (int64_t i = 0; i < w.rows_in_block(b); ++i) {
    for (; pos < w.cols && word < end; ++word) pos += store_word(masks + 2 * *word, trits + pos, one, zero, two);
    for (; pos < w.cols; ++pos) trits[pos] = 1;  // a short (malformed) stream: zeros
    const int64_t r = b * kSub1BlockRows + i;
    const __m512 table = level_table(w, r);
    int64_t t = 0;
    for (; t + kTokenGroup <= tokens; t += kTokenGroup)
      dot_avx512<kTokenGroup>(trits, table, x + t * x_stride, x_stride, w.cols, y + t * y_stride + r, y_stride);
    for (; t < tokens; ++t) dot_avx512<1>(trits, table, x + t * x_stride, x_stride, w.cols, y + t * y_stride + r, y_stride);
    _mm512_storeu_si512(trits, _mm512_loadu_si512(trits + w.cols));  // the spill starts the next row
    pos -= w.cols;
  }
}

MOEC_AVX512 void dequantize_block_avx512(const Sub1View& w, int64_t b, float* out) {
  uint8_t* trits = block_buffer(w);
  decode_block_avx512(w, b, trits);
  for (int64_t i = 0; i < w.rows_in_block(b); ++i) {
    const int64_t r = b * kSub1BlockRows + i;
    const __m512 table = level_table(w, r);
    const uint8_t* row = trits + i * w.cols;
    float* o = out + i * w.cols;
    int64_t c = 0;
    for (; c + 16 <= w.cols; c += 16) _mm512_storeu_ps(o + c, weights16(row + c, table));
    if (c < w.cols) _mm512_mask_storeu_ps(o + c, __mmask16((1u << (w.cols - c)) - 1), weights16(row + c, table));
  }
}

#endif  // __x86_64__

void dequantize_block_portable(const Sub1View& w, int64_t b, float* out) {
  uint8_t* trits = block_buffer(w);
  decode_sub1_block(w, b, trits);
  for (int64_t i = 0; i < w.rows_in_block(b); ++i) {
    const int64_t r = b * kSub1BlockRows + i;
    const float level[3] = {w.low(r), 0.0f, w.high(r)};
    for (int64_t c = 0; c < w.cols; ++c) out[i * w.cols + c] = level[trits[i * w.cols + c]];
  }
}

}  // namespace

bool sub1_isa_supported(Sub1Isa isa) {
  switch (isa) {
    case Sub1Isa::Portable: return true;
#if defined(__x86_64__)
    case Sub1Isa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Sub1Isa::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("bmi");
#else
    default: return false;
#endif
  }
  return false;
}

Sub1Isa sub1_best_isa() {
  static const Sub1Isa best = sub1_isa_supported(Sub1Isa::Avx512) ? Sub1Isa::Avx512
                              : sub1_isa_supported(Sub1Isa::Avx2) ? Sub1Isa::Avx2
                                                                  : Sub1Isa::Portable;
  return best;
}

const char* sub1_isa_name(Sub1Isa isa) {
  switch (isa) {
    case Sub1Isa::Portable: return "portable";
    case Sub1Isa::Avx2: return "avx2";
    case Sub1Isa::Avx512: return "avx512";
  }
  return "?";
}

void sub1_linear_blocks(const Sub1View& w, int64_t block0, int64_t n_blocks, const float* x, int64_t x_stride,
                        int64_t tokens, float* y, int64_t y_stride, Sub1Isa isa) {
  if (!sub1_isa_supported(isa)) fail("sub1 kernels: this CPU has no {}", sub1_isa_name(isa));
  for (int64_t b = block0; b < block0 + n_blocks; ++b) {
#if defined(__x86_64__)
    if (isa == Sub1Isa::Avx512) {
      linear_block_avx512(w, b, x, x_stride, tokens, y, y_stride);
      continue;
    }
    if (isa == Sub1Isa::Avx2) {
      linear_block_avx2(w, b, x, x_stride, tokens, y, y_stride);
      continue;
    }
#endif
    linear_block_portable(w, b, x, x_stride, tokens, y, y_stride);
  }
}

void sub1_dequantize_block(const Sub1View& w, int64_t b, float* out, Sub1Isa isa) {
#if defined(__x86_64__)
  if (isa == Sub1Isa::Avx512 && sub1_isa_supported(isa)) return dequantize_block_avx512(w, b, out);
#endif
  dequantize_block_portable(w, b, out);
}

}  // namespace moec
