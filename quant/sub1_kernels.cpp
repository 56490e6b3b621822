#include "quant/sub1_kernels.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <vector>

#include "io/error.h"
#include "io/x86_simd.h"

namespace moec {
namespace {

constexpr int64_t kSlack = 64;  // decode buffer bytes past a block's trits (a codeword is stored whole)
constexpr int kRows = int(kSub1BlockRows);
constexpr int kWordCols = 32;       // columns per plane word
constexpr int kGroupsPerWord = 8;   // 4-column groups per word
constexpr int kTableFloats = 16;    // one group's subset sums
constexpr int kPlaneStride = 2 * kRows;  // u32 per plane word of a block: [low, high][rows]
// Codewords ahead whose masks are prefetched: the dictionary's table (1 MiB
// at 65,536 codewords) is read at random and mostly misses L2.
constexpr int64_t kPrefetch = 8;

// Where a decoding loop stops prefetching: kPrefetch codewords before the
// block's end.
inline const uint16_t* prefetch_end(const uint16_t* word, const uint16_t* end) {
  return end - word > kPrefetch ? end - kPrefetch : word;
}

// The last level combination, shared by every path so they round alike
// (this file is compiled with -ffp-contract=off: never fused into an FMA).
inline float combine(float low, float sum_low, float high, float sum_high) {
  const float a = low * sum_low;
  const float b = high * sum_high;
  return a + b;
}

// Bits of plane word w that are columns of the row.
inline uint32_t columns_mask(int64_t cols, int64_t w) {
  const int64_t n = cols - kWordCols * w;
  return n >= kWordCols ? ~0u : (1u << n) - 1u;
}

uint8_t* block_buffer(const Sub1View& w) {
  thread_local std::vector<uint8_t> buffer;
  const size_t need = size_t(kSub1BlockRows * w.cols + kSlack);
  if (buffer.size() < need) buffer.resize(need);
  return buffer.data();
}

// The two levels of each row of block b (zeros past the last row).
struct BlockLevels {
  alignas(64) float low[kRows];
  alignas(64) float high[kRows];
  int rows;
  explicit BlockLevels(int rows_in_block) : rows(rows_in_block) {}
  BlockLevels(const Sub1View& w, int64_t b) : rows(int(w.rows_in_block(b))) {
    for (int i = 0; i < kRows; ++i) {
      low[i] = i < rows ? w.low(b * kSub1BlockRows + i) : 0.0f;
      high[i] = i < rows ? w.high(b * kSub1BlockRows + i) : 0.0f;
    }
  }
};

// ---- portable ----------------------------------------------------------------

// Byte i of kSpread[b] is bit i of b: a mask byte to 8 bytes of 0/1.
constexpr auto kSpread = [] {
  std::array<uint64_t, 256> t{};
  for (int b = 0; b < 256; ++b)
    for (int i = 0; i < 8; ++i) t[size_t(b)] |= uint64_t(b >> i & 1) << (8 * i);
  return t;
}();

// A codeword's 64 trits from its two masks, 8 at a time: trit = 1 + high − low
// per byte (never below 0, so no borrow crosses bytes). Returns its length.
inline int store_word_portable(const uint64_t* masks, uint8_t* out) {
  const uint64_t low = masks[0], high = masks[1];
  for (int k = 0; k < 8; ++k) {
    const uint64_t v = 0x0101010101010101ull + kSpread[(high >> (8 * k)) & 255] - kSpread[(low >> (8 * k)) & 255];
    std::memcpy(out + 8 * k, &v, 8);
  }
  const uint64_t end = low & high;
  return end ? __builtin_ctzll(end) : 64;
}

// The reference decoder's trits (tested equal), a codeword at a time.
void decode_block_portable(const Sub1View& w, int64_t b, uint8_t* out) {
  const uint64_t* masks = w.codebook.masks;
  const uint16_t* word = w.words + w.blocks[b];
  const uint16_t *end = w.words + w.blocks[b + 1], *safe = prefetch_end(word, end);
  const int64_t n = w.rows_in_block(b) * w.cols;
  int64_t pos = 0;
  for (; word < end && pos < n; ++word) {
    if (word < safe) __builtin_prefetch(masks + 2 * word[kPrefetch]);
    pos += store_word_portable(masks + 2 * *word, out + pos);
  }
  for (; pos < n; ++pos) out[pos] = 1;  // a short (malformed) stream: zeros
}

// A group's 16 subset sums, each from 0 in the order of the bits.
void group_table_portable(const float v[4], float* t) {
  for (int i = 0; i < kTableFloats; ++i) {
    float s = 0.0f;
    for (int b = 0; b < 4; ++b)
      if (i >> b & 1) s += v[b];
    t[i] = s;
  }
}

void tables_portable(const float* x, int64_t cols, int64_t groups, float* t) {
  for (int64_t g = 0; g < groups; ++g) {
    float v[4];
    for (int b = 0; b < 4; ++b) v[b] = 4 * g + b < cols ? x[4 * g + b] : 0.0f;
    group_table_portable(v, t + g * kTableFloats);
  }
}

// Row i's plane words from its decoded trits (0 low, 1 zero, 2 high).
void row_planes_portable(const uint8_t* trits, int64_t cols, int i, uint32_t* planes) {
  for (int64_t w = 0; w < sub1_plane_words(cols); ++w) {
    uint32_t lo = 0, hi = 0;
    for (int64_t j = 0; j < kWordCols && kWordCols * w + j < cols; ++j) {
      lo |= uint32_t(trits[kWordCols * w + j] == 0) << j;
      hi |= uint32_t(trits[kWordCols * w + j] == 2) << j;
    }
    planes[w * kPlaneStride + i] = lo;
    planes[w * kPlaneStride + kRows + i] = hi;
  }
}

void decode_planes_portable(const Sub1View& w, int64_t b, uint32_t* planes) {
  uint8_t* trits = block_buffer(w);
  decode_block_portable(w, b, trits);
  for (int i = 0; i < int(w.rows_in_block(b)); ++i) row_planes_portable(trits + i * w.cols, w.cols, i, planes);
}

// Σ_g T[g][nibble g of the plane row]: four partial sums (g mod 4).
float plane_sum_portable(const uint32_t* plane_row, int64_t words, const float* tables) {
  float s[4] = {0, 0, 0, 0};
  for (int64_t w = 0; w < words; ++w) {
    const uint32_t v = plane_row[w * kPlaneStride];
    for (int j = 0; j < kGroupsPerWord; ++j)
      s[j & 3] += tables[(kGroupsPerWord * w + j) * kTableFloats + (v >> (4 * j) & 15)];
  }
  return (s[0] + s[1]) + (s[2] + s[3]);
}

void product_portable(const uint32_t* planes, int64_t words, const Sub1Activations& tables, const BlockLevels& lv,
                      float* y, int64_t y_stride) {
  for (int64_t t = 0; t < tables.tokens(); ++t)
    for (int i = 0; i < lv.rows; ++i)
      y[t * y_stride + i] = combine(lv.low[i], plane_sum_portable(planes + i, words, tables.token_tables(t)), lv.high[i],
                                    plane_sum_portable(planes + kRows + i, words, tables.token_tables(t)));
}

// Batches above kSub1TableMaxTokens: the positions of a row's nonzeros of
// one plane, ascending, padded to a multiple of 8 with position `cols`
// (x reads 0 there; adding +0 leaves a partial sum's bits unchanged).
int64_t plane_positions(const uint32_t* planes, int64_t words, int plane, int i, int64_t cols, uint32_t* list) {
  int64_t n = 0;
  for (int64_t w = 0; w < words; ++w)
    for (uint32_t bits = planes[w * kPlaneStride + plane * kRows + i]; bits != 0; bits &= bits - 1)
      list[n++] = uint32_t(kWordCols * w + __builtin_ctz(bits));
  for (; n % 8; ++n) list[n] = uint32_t(cols);
  return n;
}

// A thread's two position lists, with room for every column plus padding.
uint32_t* position_buffer(int64_t words) {
  thread_local std::vector<uint32_t> buffer;
  const size_t need = size_t(2 * (kWordCols * words + 8));
  if (buffer.size() < need) buffer.resize(need);
  return buffer.data();
}

// Σ x[list[i]] for one token: eight partial sums, element i into sum
// i mod 8, added as ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)) — the
// order the vector paths keep with a lane per token.
float position_sum(const float* x, const uint32_t* list, int64_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += x[list[i + k]];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// One row's outputs from its two position lists, for every token (an ISA's
// vector lanes, or one token at a time).
using LaneRowFn = void (*)(const Sub1Activations& a, const uint32_t* lo, int64_t n_lo, const uint32_t* hi,
                           int64_t n_hi, float low, float high, float* y, int64_t y_stride);

void lane_row_portable(const Sub1Activations& a, const uint32_t* lo, int64_t n_lo, const uint32_t* hi, int64_t n_hi,
                       float low, float high, float* y, int64_t y_stride) {
  for (int64_t t = 0; t < a.tokens(); ++t) {
    const float* xt = a.lane_group(t);  // one lane: [tokens][cols + 1]
    y[t * y_stride] = combine(low, position_sum(xt, lo, n_lo), high, position_sum(xt, hi, n_hi));
  }
}

// The block's rows: positions read off the planes, then the ISA's sums.
void lanes(const uint32_t* planes, int64_t words, const Sub1Activations& a, const BlockLevels& lv, int64_t cols,
           float* y, int64_t y_stride, LaneRowFn row) {
  uint32_t* lo = position_buffer(words);
  uint32_t* hi = lo + kWordCols * words + 8;
  for (int i = 0; i < lv.rows; ++i) {
    const int64_t n_lo = plane_positions(planes, words, 0, i, cols, lo);
    const int64_t n_hi = plane_positions(planes, words, 1, i, cols, hi);
    row(a, lo, n_lo, hi, n_hi, lv.low[i], lv.high[i], y + i, y_stride);
  }
}

void dequantize_block_portable(const Sub1View& w, int64_t b, float* out) {
  uint8_t* trits = block_buffer(w);
  decode_block_portable(w, b, trits);
  for (int64_t i = 0; i < w.rows_in_block(b); ++i) {
    const int64_t r = b * kSub1BlockRows + i;
    const float level[3] = {w.low(r), 0.0f, w.high(r)};
    for (int64_t c = 0; c < w.cols; ++c) out[i * w.cols + c] = level[trits[i * w.cols + c]];
  }
}

#if defined(__x86_64__)
// ---- AVX2 -------------------------------------------------------------------

#define MOEC_AVX2 __attribute__((target("avx2,fma,bmi,bmi2")))

// A block's levels, 8 rows per vector: sub1_level's arithmetic, the same
// operations in the same order ((scale · f) · 2^-(n >> 4), code 0 → 0, the
// low level negated), so the same floats as BlockLevels(w, b). For narrow
// matrices the scalar version's 32 table lookups per block cost about a
// quarter of a one-token product (the shipped model's 256 columns).
MOEC_AVX2 inline __m256 levels8_avx2(__m128i codes, __m256 scale, __m256 f_lo, __m256 f_hi) {
  const __m256i code = _mm256_cvtepu8_epi32(codes);
  const __m256i n = _mm256_sub_epi32(_mm256_set1_epi32(255), code);
  const __m256i r = _mm256_and_si256(n, _mm256_set1_epi32(15));
  const __m256 f = _mm256_blendv_ps(_mm256_permutevar8x32_ps(f_lo, r), _mm256_permutevar8x32_ps(f_hi, r),
                                    _mm256_castsi256_ps(_mm256_slli_epi32(r, 28)));
  const __m256 pow2 =
      _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_sub_epi32(_mm256_set1_epi32(127), _mm256_srli_epi32(n, 4)), 23));
  const __m256 level = _mm256_mul_ps(_mm256_mul_ps(scale, f), pow2);
  return _mm256_andnot_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(code, _mm256_setzero_si256())), level);
}

MOEC_AVX2 BlockLevels block_levels_avx2(const Sub1View& w, int64_t b) {
  // 2^(-r/16) for r < 16, sub1_level's own constants (code 255 - r: n = r).
  static const std::array<float, 16> kSteps = [] {
    std::array<float, 16> t{};
    for (unsigned r = 0; r < 16; ++r) t[r] = sub1_level(255u - r, 1.0f);
    return t;
  }();
  BlockLevels lv(int(w.rows_in_block(b)));
  alignas(32) uint8_t codes[2 * kRows] = {};  // [low, high] per row
  std::memcpy(codes, w.levels + 2 * b * kSub1BlockRows, size_t(2 * lv.rows));
  const __m128i by_level = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  const __m128i rows0 = _mm_shuffle_epi8(_mm_load_si128(reinterpret_cast<const __m128i*>(codes)), by_level);
  const __m128i rows8 = _mm_shuffle_epi8(_mm_load_si128(reinterpret_cast<const __m128i*>(codes + 16)), by_level);
  const __m128i low = _mm_unpacklo_epi64(rows0, rows8), high = _mm_unpackhi_epi64(rows0, rows8);  // 16 codes each
  const __m256 scale = _mm256_set1_ps(w.level_scale), f_lo = _mm256_loadu_ps(kSteps.data()),
               f_hi = _mm256_loadu_ps(kSteps.data() + 8), sign = _mm256_set1_ps(-0.0f);
  _mm256_store_ps(lv.low, _mm256_xor_ps(sign, levels8_avx2(low, scale, f_lo, f_hi)));
  _mm256_store_ps(lv.low + 8, _mm256_xor_ps(sign, levels8_avx2(_mm_srli_si128(low, 8), scale, f_lo, f_hi)));
  _mm256_store_ps(lv.high, levels8_avx2(high, scale, f_lo, f_hi));
  _mm256_store_ps(lv.high + 8, levels8_avx2(_mm_srli_si128(high, 8), scale, f_lo, f_hi));
  for (int i = lv.rows; i < kRows; ++i) lv.low[i] = lv.high[i] = 0.0f;  // past the block: +0, as BlockLevels(w, b)
  return lv;
}

MOEC_AVX2 inline __m256i trits32(__m256i low, __m256i high, __m256i spread, __m256i bits) {
  const __m256i l = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(low, spread), bits), bits);
  const __m256i h = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(high, spread), bits), bits);
  return _mm256_add_epi8(_mm256_sub_epi8(_mm256_set1_epi8(1), h), l);  // compare results are −1
}

// A codeword's two 64-bit masks to 64 trit bytes. Each 32-byte half: the
// mask bytes spread 8 times (shuffle), one bit per byte kept (and), compared
// to a byte of 0xFF; trit = 1 + high − low. Returns the codeword's length.
MOEC_AVX2 inline int store_word_avx2(const uint64_t* masks, uint8_t* out) {
  const __m256i spread0 = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                           2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i spread1 = _mm256_add_epi8(spread0, _mm256_set1_epi8(4));
  const __m256i bits = _mm256_set1_epi64x(int64_t(0x8040201008040201));
  const __m256i low = _mm256_set1_epi64x(int64_t(masks[0])), high = _mm256_set1_epi64x(int64_t(masks[1]));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), trits32(low, high, spread0, bits));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32), trits32(low, high, spread1, bits));
  return int(_tzcnt_u64(masks[0] & masks[1]));  // 64 when there is no end marker
}

MOEC_AVX2 void decode_block_avx2(const Sub1View& w, int64_t b, uint8_t* out) {
  const uint64_t* masks = w.codebook.masks;
  const uint16_t* word = w.words + w.blocks[b];
  const uint16_t *end = w.words + w.blocks[b + 1], *safe = prefetch_end(word, end);
  const int64_t n = w.rows_in_block(b) * w.cols;
  int64_t pos = 0;
  for (; word < end && pos < n; ++word) {
    if (word < safe) __builtin_prefetch(masks + 2 * word[kPrefetch]);
    pos += store_word_avx2(masks + 2 * *word, out + pos);
  }
  for (; pos < n; ++pos) out[pos] = 1;  // a short (malformed) stream: zeros
}

// The block's stream as two bit streams, low and high plane bits of every
// trit in stream order: a codeword's masks without their end marker (the one
// bit set in both) are its trits' plane bits, appended at bit offset s of a
// 64-bit accumulator. Branch-free (a branch on "the word is full" is taken
// ~40% of the time at random and cost ~35% here): the accumulator is stored
// after every codeword, and when the word fills up a conditional move
// restarts it with the bits that did not fit. The loop checks nothing but
// the codeword pointer (the buffer has room for a 64-bit word per codeword,
// so even an over-long stream stays inside it) and prefetches in a loop of
// its own: 36 instructions per codeword (GCC 12), against 57 for a loop that
// also checked the bit count and merged with masks; uncached one-token
// products 18% faster on Zen 1 with the copies below. (The byte decoder:
// ~19 cycles per codeword.) Bits past the block's trits are never read; a stream
// that covers fewer trits (only a malformed file's, refused when viewed)
// leaves zeros, as the reference does.
struct BitStreams {
  uint64_t *low, *high;
  uint64_t acc_low = 0, acc_high = 0, s = 0, q = 0;

  MOEC_AVX2 void append(const uint64_t* masks) {
    const uint64_t lo_mask = masks[0], hi_mask = masks[1];
    const uint64_t length = _tzcnt_u64(lo_mask & hi_mask);  // 64 without an end marker
    const uint64_t lo = _andn_u64(hi_mask, lo_mask), hi = _andn_u64(lo_mask, hi_mask);
    acc_low |= lo << s;
    acc_high |= hi << s;
    low[q] = acc_low;
    high[q] = acc_high;
    const uint64_t next = s + length;  // < 128
    const uint64_t spill = s ^ 63;     // 63 - s: the bits past the word, without a shift by 64
    const uint64_t carry_low = (lo >> 1) >> spill, carry_high = (hi >> 1) >> spill;
    // acc = carry when the word is full: two cmov (GCC turns the ternary
    // into a branch, which mispredicts on ~40% of the codewords).
    asm("cmp $63, %[next]\n\t"
        "cmova %[carry_low], %[acc_low]\n\t"
        "cmova %[carry_high], %[acc_high]"
        : [acc_low] "+r"(acc_low), [acc_high] "+r"(acc_high)
        : [next] "r"(next), [carry_low] "r"(carry_low), [carry_high] "r"(carry_high)
        : "cc");
    q += next >> 6;
    s = next & 63;
  }
};

// 64-bit words that hold block b's trits, one bit each.
int64_t block_bit_words(const Sub1View& w, int64_t b) { return (w.rows_in_block(b) * w.cols + 63) / 64; }

// Words the streams of block b may write: one per codeword (each adds at
// most 64 bits), at least the block's trits, plus the last partial word.
int64_t bit_stream_words(const Sub1View& w, int64_t b) {
  const int64_t codewords = int64_t(w.blocks[b + 1] - w.blocks[b]);
  return std::max(codewords, block_bit_words(w, b)) + 1;
}

MOEC_AVX2 int64_t bit_streams_avx2(const Sub1View& w, int64_t b, uint64_t* low, uint64_t* high) {
  const uint64_t* masks = w.codebook.masks;
  const uint16_t* word = w.words + w.blocks[b];
  const uint16_t *end = w.words + w.blocks[b + 1], *safe = prefetch_end(word, end);
  BitStreams streams{low, high};
  for (; word < safe; ++word) {
    __builtin_prefetch(masks + 2 * size_t(word[kPrefetch]));
    streams.append(masks + 2 * size_t(*word));
  }
  for (; word < end; ++word) streams.append(masks + 2 * size_t(*word));
  low[streams.q] = streams.acc_low;
  high[streams.q] = streams.acc_high;
  return int64_t(streams.q) + 1;  // words written
}

MOEC_AVX2 void decode_planes_avx2(const Sub1View& w, int64_t b, uint32_t* planes) {
  // Two streams of the block's bits, each with a zero word and 8 bytes of
  // slack past its end (a row's last plane word is read as 8 bytes).
  thread_local std::vector<uint64_t> streams;
  const int64_t per = bit_stream_words(w, b) + 2;
  if (int64_t(streams.size()) < 2 * per) streams.resize(size_t(2 * per));
  uint64_t *low = streams.data(), *high = low + per;
  const int64_t written = bit_streams_avx2(w, b, low, high);
  const int64_t used = block_bit_words(w, b) + 2;  // words the rows read, with the slack
  if (written < used) {
    std::fill(low + written, low + used, 0);
    std::fill(high + written, high + used, 0);
  }
  const auto* lb = reinterpret_cast<const uint8_t*>(low);
  const auto* hb = reinterpret_cast<const uint8_t*>(high);
  const int64_t words = sub1_plane_words(w.cols);
  if (w.cols % kWordCols == 0) {  // every row starts on a 32-bit word of the streams: plain copies
    for (int i = 0; i < int(w.rows_in_block(b)); ++i)
      for (int64_t k = 0; k < words; ++k) {
        const int64_t byte = 4 * (i * words + k);
        std::memcpy(&planes[k * kPlaneStride + i], lb + byte, 4);
        std::memcpy(&planes[k * kPlaneStride + kRows + i], hb + byte, 4);
      }
    return;
  }
  for (int i = 0; i < int(w.rows_in_block(b)); ++i)
    for (int64_t k = 0; k < words; ++k) {  // row i's word k: 32 bits at any bit offset of the streams
      const uint64_t bit = uint64_t(i * w.cols + kWordCols * k);
      uint64_t vl, vh;
      std::memcpy(&vl, lb + (bit >> 3), 8);
      std::memcpy(&vh, hb + (bit >> 3), 8);
      const uint32_t m = columns_mask(w.cols, k);
      planes[k * kPlaneStride + i] = uint32_t(vl >> (bit & 7)) & m;
      planes[k * kPlaneStride + kRows + i] = uint32_t(vh >> (bit & 7)) & m;
    }
}

// The 16 subset sums of each 4-column group as two 8-lane halves: a lane
// gains x_b where bit b of its index is set (blend of t and t + x_b), the
// same additions as the portable loop.
MOEC_AVX2 void tables_avx2(const float* x, int64_t cols, int64_t groups, float* t) {
  for (int64_t g = 0; g < groups; ++g) {
    float v[4];
    for (int b = 0; b < 4; ++b) v[b] = 4 * g + b < cols ? x[4 * g + b] : 0.0f;
    __m256 lo = _mm256_setzero_ps();
    lo = _mm256_blend_ps(lo, _mm256_add_ps(lo, _mm256_set1_ps(v[0])), 0xAA);
    lo = _mm256_blend_ps(lo, _mm256_add_ps(lo, _mm256_set1_ps(v[1])), 0xCC);
    lo = _mm256_blend_ps(lo, _mm256_add_ps(lo, _mm256_set1_ps(v[2])), 0xF0);
    const __m256 hi = _mm256_add_ps(lo, _mm256_set1_ps(v[3]));  // entries 8..15: bit 3 set
    _mm256_storeu_ps(t + g * kTableFloats, lo);
    _mm256_storeu_ps(t + g * kTableFloats + 8, hi);
  }
}

// One token, rows in byte lanes (pshufb lookups). Zen 1 runs a 256-bit
// vpermps as 3 micro-ops at one per 4 cycles, so the two-vpermps-and-a-blend
// lookup of a nibble for 8 rows cost ~21 cycles per 32 weights there (1.5
// weights per cycle). pshufb looks up a 16-entry byte table for 16 byte
// lanes in one micro-op: a group's 16 subset sums are kept byte-sliced
// (byte_slice_tables_avx2: vector b holds byte b of entries 0..15), so four
// pshufb fetch the four bytes of the entries that 16 lanes' nibbles select,
// and byte/word unpacks reassemble the floats. The 16 lanes are 8 rows × the
// two planes (low plane rows 8h..8h+7, then high), so every lane is used and
// one lookup serves both planes. Per 4 columns × 8 rows: 4 pshufb, 8
// unpacks, 2 vinsertf128, 2 adds (plus the plane bytes' transpose, shared by
// a word's 8 groups), against 4 vpermps, 2 blends, 2 adds and 4 shifts.
// The floats looked up are the tables' own and each is added to partial sum
// g mod 4 in ascending g, as on every other path: the same bits.

// pshufb pattern gathering bytes 0,1,2,3 of four u32 lanes:
// [byte 0 of lanes 0..3 | byte 1 ... | byte 2 ... | byte 3 ...].
MOEC_AVX2 inline __m128i by_byte_index() { return _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15); }

// Four vectors of four u32 lanes each, transposed by byte: out[b] = byte b
// of the 16 lanes (a's four, then b's, c's, d's).
MOEC_AVX2 inline void bytes_by_index(__m128i a, __m128i b, __m128i c, __m128i d, __m128i out[4]) {
  const __m128i gather = by_byte_index();
  a = _mm_shuffle_epi8(a, gather);
  b = _mm_shuffle_epi8(b, gather);
  c = _mm_shuffle_epi8(c, gather);
  d = _mm_shuffle_epi8(d, gather);
  const __m128i ab01 = _mm_unpacklo_epi32(a, b), ab23 = _mm_unpackhi_epi32(a, b);  // [byte 0 | byte 1], [2 | 3]
  const __m128i cd01 = _mm_unpacklo_epi32(c, d), cd23 = _mm_unpackhi_epi32(c, d);
  out[0] = _mm_unpacklo_epi64(ab01, cd01);
  out[1] = _mm_unpackhi_epi64(ab01, cd01);
  out[2] = _mm_unpacklo_epi64(ab23, cd23);
  out[3] = _mm_unpackhi_epi64(ab23, cd23);
}

// Each group's 16 floats (64 bytes, 16-byte aligned) rewritten in place as
// four vectors, vector b holding byte b of entries 0..15.
MOEC_AVX2 void byte_slice_tables_avx2(float* tables, int64_t groups) {
  for (int64_t g = 0; g < groups; ++g) {
    auto* p = reinterpret_cast<__m128i*>(tables + g * kTableFloats);
    __m128i sliced[4];
    bytes_by_index(_mm_load_si128(p), _mm_load_si128(p + 1), _mm_load_si128(p + 2), _mm_load_si128(p + 3), sliced);
    for (int b = 0; b < 4; ++b) _mm_store_si128(p + b, sliced[b]);
  }
}

// Plane word w of rows 8h..8h+7 as four byte vectors: bytes[b] = [byte b of
// the low plane's 8 rows | byte b of the high plane's 8 rows]; byte b holds
// the nibbles of groups 2b (low nibble) and 2b + 1 (high nibble).
MOEC_AVX2 inline void plane_bytes_avx2(const uint32_t* word, int h, __m128i bytes[4]) {
  const auto* lo = reinterpret_cast<const __m128i*>(word + 8 * h);
  const auto* hi = reinterpret_cast<const __m128i*>(word + kRows + 8 * h);
  bytes_by_index(_mm_loadu_si128(lo), _mm_loadu_si128(lo + 1), _mm_loadu_si128(hi), _mm_loadu_si128(hi + 1), bytes);
}

// One group's entries for 16 lanes' nibbles (idx: bytes 0..15): the low
// plane's 8 rows' floats and the high plane's.
MOEC_AVX2 inline void lookup_group_avx2(const float* table, __m128i idx, __m256& low, __m256& high) {
  const auto* t = reinterpret_cast<const __m128i*>(table);
  const __m128i v0 = _mm_shuffle_epi8(_mm_load_si128(t), idx), v1 = _mm_shuffle_epi8(_mm_load_si128(t + 1), idx);
  const __m128i v2 = _mm_shuffle_epi8(_mm_load_si128(t + 2), idx), v3 = _mm_shuffle_epi8(_mm_load_si128(t + 3), idx);
  const __m128i low01 = _mm_unpacklo_epi8(v0, v1), high01 = _mm_unpackhi_epi8(v0, v1);  // bytes 0, 1 of each float
  const __m128i low23 = _mm_unpacklo_epi8(v2, v3), high23 = _mm_unpackhi_epi8(v2, v3);  // bytes 2, 3
  low = _mm256_castsi256_ps(_mm256_set_m128i(_mm_unpackhi_epi16(low01, low23), _mm_unpacklo_epi16(low01, low23)));
  high = _mm256_castsi256_ps(_mm256_set_m128i(_mm_unpackhi_epi16(high01, high23), _mm_unpacklo_epi16(high01, high23)));
}

// Rows h·8..h·8+7 of a block for token t (byte-sliced tables).
MOEC_AVX2 void product_half_avx2(const uint32_t* planes, int64_t words, const float* tables, const BlockLevels& lv,
                                 int h, float* y) {
  __m256 al[4], ah[4];
  for (int a = 0; a < 4; ++a) al[a] = ah[a] = _mm256_setzero_ps();
  const __m128i nibble = _mm_set1_epi8(0x0f);
  for (int64_t w = 0; w < words; ++w) {
    __m128i bytes[4];
    plane_bytes_avx2(planes + w * kPlaneStride, h, bytes);
    const float* t = tables + kGroupsPerWord * w * kTableFloats;
    for (int b = 0; b < 4; ++b) {  // groups j = 2b, 2b + 1 of the word: partial sums j & 3
      __m256 lo, hi;
      lookup_group_avx2(t + 2 * b * kTableFloats, _mm_and_si128(bytes[b], nibble), lo, hi);
      al[(2 * b) & 3] = _mm256_add_ps(al[(2 * b) & 3], lo);
      ah[(2 * b) & 3] = _mm256_add_ps(ah[(2 * b) & 3], hi);
      lookup_group_avx2(t + (2 * b + 1) * kTableFloats, _mm_and_si128(_mm_srli_epi16(bytes[b], 4), nibble), lo, hi);
      al[(2 * b + 1) & 3] = _mm256_add_ps(al[(2 * b + 1) & 3], lo);
      ah[(2 * b + 1) & 3] = _mm256_add_ps(ah[(2 * b + 1) & 3], hi);
    }
  }
  const __m256 low = _mm256_load_ps(lv.low + 8 * h), high = _mm256_load_ps(lv.high + 8 * h);
  const __m256 sl = _mm256_add_ps(_mm256_add_ps(al[0], al[1]), _mm256_add_ps(al[2], al[3]));
  const __m256 sh = _mm256_add_ps(_mm256_add_ps(ah[0], ah[1]), _mm256_add_ps(ah[2], ah[3]));
  alignas(32) float out[8];
  _mm256_store_ps(out, _mm256_add_ps(_mm256_mul_ps(low, sl), _mm256_mul_ps(high, sh)));
  std::copy(out, out + std::min(8, lv.rows - 8 * h), y + 8 * h);
}

MOEC_AVX2 void product_avx2(const uint32_t* planes, int64_t words, const Sub1Activations& tables, const BlockLevels& lv,
                            float* y, int64_t y_stride) {
  for (int64_t t = 0; t < tables.tokens(); ++t)
    for (int h = 0; h * 8 < lv.rows; ++h)
      product_half_avx2(planes, words, tables.token_tables(t), lv, h, y + t * y_stride);
}

// Batches of 2..kSub1TableMaxTokens tokens, tokens in lanes (groups of 8
// tokens per ymm vector, a last group of ≤ 4 in an xmm): the tables
// interleaved as [token group][group g][entry][lanes]
// (Sub1Activations::prepare), so one row's nibble of group g selects one
// vector holding that entry for the group's tokens — a rotate and a mask
// (nibble_x4) and one vector add per 4 columns and plane, with no permutes.
// On CPUs whose AVX2 runs 256-bit permutes slowly (AMD Zen 1: vpermps is 3
// micro-ops, every ymm operation two 128-bit halves) the rows-in-lanes
// lookups above cost 2 vpermps and a blend per token; here one lookup serves
// the group. Same additions in the same order per (row, token) as every
// other table path (group g into partial sum g mod 4), so the bits equal the
// one-token product's.
//   Columns go in chunks of kLaneChunkWords plane words, every row of the
// block per chunk, its partial sums kept between chunks, so the 16 rows
// share a 64 KiB slice of the tables (8 lanes) instead of each sweeping a
// whole Mixtral-width table (1.8 MiB). On the Zen 1 it was measured on,
// chunks of 4..64 words and none at all were within noise (the hot entries
// are the zero nibbles'); kept for CPUs with smaller caches than its L2.
template <int L>
struct LaneVec;
template <>
struct LaneVec<4> {
  using V = __m128;
  static MOEC_AVX2 V load(const float* p) { return _mm_load_ps(p); }
  static MOEC_AVX2 void store(float* p, V v) { _mm_store_ps(p, v); }
  static MOEC_AVX2 V add(V a, V b) { return _mm_add_ps(a, b); }
  static MOEC_AVX2 V mul(V a, V b) { return _mm_mul_ps(a, b); }
  static MOEC_AVX2 V set1(float v) { return _mm_set1_ps(v); }
};
template <>
struct LaneVec<8> {
  using V = __m256;
  static MOEC_AVX2 V load(const float* p) { return _mm256_load_ps(p); }
  static MOEC_AVX2 void store(float* p, V v) { _mm256_store_ps(p, v); }
  static MOEC_AVX2 V add(V a, V b) { return _mm256_add_ps(a, b); }
  static MOEC_AVX2 V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static MOEC_AVX2 V set1(float v) { return _mm256_set1_ps(v); }
};

// The interleaved tables of n ≤ L tokens (product_lanes_avx2's layout, one
// token group): per 4-column group, entry i | 2^b = entry i + x_b for
// i < 2^b, from entry 0 = 0 — each entry summed from 0 in the order of its
// bits, the same additions as tables_avx2 and the portable loop, for L
// tokens at once (lanes past n and columns past cols are 0).
template <int L>
MOEC_AVX2 void lane_tables_avx2(const float* x, int64_t x_stride, int n, int64_t cols, int64_t groups, float* out) {
  using Op = LaneVec<L>;
  alignas(32) float v[5][L] = {};  // v[4]: entry 0
  for (int64_t g = 0; g < groups; ++g) {
    for (int b = 0; b < 4; ++b) {
      const int64_t c = 4 * g + b;
      for (int k = 0; k < L; ++k) v[b][k] = k < n && c < cols ? x[k * x_stride + c] : 0.0f;
    }
    float* o = out + g * kTableFloats * L;
    Op::store(o, Op::load(v[4]));
    for (int b = 0; b < 4; ++b) {
      const auto xb = Op::load(v[b]);
      for (int i = 0; i < (1 << b); ++i) Op::store(o + ((1 << b) + i) * L, Op::add(Op::load(o + i * L), xb));
    }
  }
}

// 4 · nibble j of a plane word: one rotate (BMI2 rorx, no copy) and one
// mask, the ×4 folded so that the address's scale (×4, ×8) does the rest.
MOEC_AVX2 inline uint32_t nibble_x4(uint32_t v, int j) { return std::rotr(v, (4 * j - 2) & 31) & 0x3Cu; }

constexpr int64_t kLaneChunkWords = 16;

// One token group: n ≤ L tokens from token t0, their tables at `tables`.
template <int L>
MOEC_AVX2 void product_lanes_avx2(const uint32_t* planes, int64_t words, const float* tables, int64_t t0, int n,
                                  const BlockLevels& lv, float* y, int64_t y_stride) {
  using Op = LaneVec<L>;
  using V = typename Op::V;
  constexpr int64_t kWordFloats = int64_t(kGroupsPerWord) * kTableFloats * L;  // one plane word's tables
  static_assert(L == 4 || L == 8);
  alignas(32) float acc[kRows][2][4][L] = {};  // each row's partial sums between column chunks
  for (int64_t w0 = 0; w0 < words; w0 += kLaneChunkWords) {
    const int64_t w1 = std::min(words, w0 + kLaneChunkWords);
    for (int i = 0; i < lv.rows; ++i) {
      V al[4], ah[4];
      for (int k = 0; k < 4; ++k) al[k] = Op::load(acc[i][0][k]), ah[k] = Op::load(acc[i][1][k]);
      for (int64_t w = w0; w < w1; ++w) {
        const uint32_t vl = planes[w * kPlaneStride + i], vh = planes[w * kPlaneStride + kRows + i];
        const float* tw = tables + w * kWordFloats;
        for (int j = 0; j < kGroupsPerWord; ++j) {
          al[j & 3] = Op::add(al[j & 3], Op::load(tw + j * kTableFloats * L + nibble_x4(vl, j) * (L / 4)));
          ah[j & 3] = Op::add(ah[j & 3], Op::load(tw + j * kTableFloats * L + nibble_x4(vh, j) * (L / 4)));
        }
      }
      for (int k = 0; k < 4; ++k) Op::store(acc[i][0][k], al[k]), Op::store(acc[i][1][k], ah[k]);
    }
  }
  for (int i = 0; i < lv.rows; ++i) {
    const V sl = Op::add(Op::add(Op::load(acc[i][0][0]), Op::load(acc[i][0][1])),
                         Op::add(Op::load(acc[i][0][2]), Op::load(acc[i][0][3])));
    const V sh = Op::add(Op::add(Op::load(acc[i][1][0]), Op::load(acc[i][1][1])),
                         Op::add(Op::load(acc[i][1][2]), Op::load(acc[i][1][3])));
    alignas(32) float out[L];
    Op::store(out, Op::add(Op::mul(Op::set1(lv.low[i]), sl), Op::mul(Op::set1(lv.high[i]), sh)));
    for (int k = 0; k < n; ++k) y[(t0 + k) * y_stride + i] = out[k];
  }
}

// Every token group of the product: 8 lanes, or 4 for a group of ≤ 4 tokens.
MOEC_AVX2 void product_lane_groups_avx2(const uint32_t* planes, int64_t words, const Sub1Activations& a,
                                        const BlockLevels& lv, float* y, int64_t y_stride) {
  for (int64_t g = 0; g * a.lanes() < a.tokens(); ++g) {
    const int64_t t0 = g * a.lanes();
    const int n = int(std::min<int64_t>(a.lanes(), a.tokens() - t0));
    if (a.group_lanes(g) == 4) product_lanes_avx2<4>(planes, words, a.lane_group(g), t0, n, lv, y, y_stride);
    else product_lanes_avx2<8>(planes, words, a.lane_group(g), t0, n, lv, y, y_stride);
  }
}

// Batches above kSub1TableMaxTokens, 8 tokens per vector: as position_sum,
// a lane per token of [cols + 1][8] activations.
MOEC_AVX2 inline __m256 position_sum8(const float* xg, const uint32_t* list, int64_t n) {
  __m256 s[8];
  for (int k = 0; k < 8; ++k) s[k] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] = _mm256_add_ps(s[k], _mm256_load_ps(xg + 8 * size_t(list[i + k])));
  return _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3])),
                       _mm256_add_ps(_mm256_add_ps(s[4], s[5]), _mm256_add_ps(s[6], s[7])));
}

MOEC_AVX2 void lane_row_avx2(const Sub1Activations& a, const uint32_t* lo, int64_t n_lo, const uint32_t* hi,
                             int64_t n_hi, float low, float high, float* y, int64_t y_stride) {
  for (int64_t g = 0; g * 8 < a.tokens(); ++g) {
    alignas(32) float out[8];
    _mm256_store_ps(out, _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(low), position_sum8(a.lane_group(g), lo, n_lo)),
                                       _mm256_mul_ps(_mm256_set1_ps(high), position_sum8(a.lane_group(g), hi, n_hi))));
    for (int64_t t = 8 * g; t < std::min<int64_t>(8 * g + 8, a.tokens()); ++t) y[t * y_stride] = out[t - 8 * g];
  }
}

MOEC_AVX2 inline __m256 weights8(const uint8_t* trits, __m256 table) {
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(trits));
  return _mm256_permutevar8x32_ps(table, _mm256_cvtepu8_epi32(bytes));
}

MOEC_AVX2 void dequantize_block_avx2(const Sub1View& w, int64_t b, float* out) {
  uint8_t* trits = block_buffer(w);
  decode_block_avx2(w, b, trits);
  for (int64_t i = 0; i < w.rows_in_block(b); ++i) {
    const int64_t r = b * kSub1BlockRows + i;
    const __m256 table = _mm256_setr_ps(w.low(r), 0.0f, w.high(r), 0.0f, 0.0f, 0.0f, 0.0f, 0.0f);
    const uint8_t* row = trits + i * w.cols;
    float* o = out + i * w.cols;
    int64_t c = 0;
    for (; c + 8 <= w.cols; c += 8) _mm256_storeu_ps(o + c, weights8(row + c, table));
    const float level[3] = {w.low(r), 0.0f, w.high(r)};
    for (; c < w.cols; ++c) o[c] = level[row[c]];
  }
}

// ---- AVX-512 ----------------------------------------------------------------

#define MOEC_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,bmi")))

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
  const uint64_t* masks = w.codebook.masks;
  const uint16_t* word = w.words + w.blocks[b];
  const uint16_t *end = w.words + w.blocks[b + 1], *safe = prefetch_end(word, end);
  const int64_t n = w.rows_in_block(b) * w.cols;
  const __m512i one = _mm512_set1_epi8(1), zero = _mm512_setzero_si512(), two = _mm512_set1_epi8(2);
  int64_t pos = 0;
  for (; word < end && pos < n; ++word) {
    if (word < safe) __builtin_prefetch(masks + 2 * word[kPrefetch]);
    pos += store_word(masks + 2 * *word, out + pos, one, zero, two);
  }
  for (; pos < n; ++pos) out[pos] = 1;  // a short (malformed) stream: zeros
}

// Row i's plane words from its decoded trits: a byte compare per level gives
// a plane word directly (bytes past the row are masked off).
MOEC_AVX512 void row_planes_avx512(const uint8_t* trits, int64_t cols, int i, uint32_t* planes) {
  const __m256i zero = _mm256_setzero_si256(), two = _mm256_set1_epi8(2);
  for (int64_t k = 0; k < sub1_plane_words(cols); ++k) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(trits + kWordCols * k));
    const uint32_t m = columns_mask(cols, k);
    planes[k * kPlaneStride + i] = _mm256_cmpeq_epi8_mask(v, zero) & m;
    planes[k * kPlaneStride + kRows + i] = _mm256_cmpeq_epi8_mask(v, two) & m;
  }
}

MOEC_AVX512 void decode_planes_avx512(const Sub1View& w, int64_t b, uint32_t* planes) {
  uint8_t* trits = block_buffer(w);
  decode_block_avx512(w, b, trits);
  for (int i = 0; i < int(w.rows_in_block(b)); ++i) row_planes_avx512(trits + i * w.cols, w.cols, i, planes);
}

// The 16 subset sums of a 4-column group in one register: lanes whose index
// has bit b set gain x_b (masked adds, in the order of the bits).
MOEC_AVX512 void tables_avx512(const float* x, int64_t cols, int64_t groups, float* t) {
  for (int64_t g = 0; g < groups; ++g) {
    float v[4];
    for (int b = 0; b < 4; ++b) v[b] = 4 * g + b < cols ? x[4 * g + b] : 0.0f;
    __m512 s = _mm512_setzero_ps();
    s = _mm512_mask_add_ps(s, 0xAAAA, s, _mm512_set1_ps(v[0]));
    s = _mm512_mask_add_ps(s, 0xCCCC, s, _mm512_set1_ps(v[1]));
    s = _mm512_mask_add_ps(s, 0xF0F0, s, _mm512_set1_ps(v[2]));
    s = _mm512_mask_add_ps(s, 0xFF00, s, _mm512_set1_ps(v[3]));
    _mm512_store_ps(t + g * kTableFloats, s);
  }
}

// A block's 16 rows (lanes) for T tokens at a time: per group, one vpermps
// per plane and token looks up all 16 rows' nibbles; the nibbles are the
// plane words shifted right by 4 per group (vpermps reads the low 4 bits).
template <int T>
MOEC_AVX512 void product_tokens_avx512(const uint32_t* planes, int64_t words, const Sub1Activations& tables, int64_t t0,
                                       const BlockLevels& lv, float* y, int64_t y_stride) {
  __m512 al[T][4], ah[T][4];
  const float* tab[T];
  for (int k = 0; k < T; ++k) {
    tab[k] = tables.token_tables(t0 + k);
    for (int a = 0; a < 4; ++a) al[k][a] = ah[k][a] = _mm512_setzero_ps();
  }
  for (int64_t w = 0; w < words; ++w) {
    __m512i vl = _mm512_loadu_si512(planes + w * kPlaneStride);
    __m512i vh = _mm512_loadu_si512(planes + w * kPlaneStride + kRows);
    for (int j = 0; j < kGroupsPerWord; ++j) {
      for (int k = 0; k < T; ++k) {
        const __m512 t = _mm512_load_ps(tab[k] + (kGroupsPerWord * w + j) * kTableFloats);
        al[k][j & 3] = _mm512_add_ps(al[k][j & 3], _mm512_permutexvar_ps(vl, t));
        ah[k][j & 3] = _mm512_add_ps(ah[k][j & 3], _mm512_permutexvar_ps(vh, t));
      }
      vl = _mm512_srli_epi32(vl, 4);
      vh = _mm512_srli_epi32(vh, 4);
    }
  }
  const __mmask16 rows = __mmask16((1u << lv.rows) - 1u);
  const __m512 low = _mm512_load_ps(lv.low), high = _mm512_load_ps(lv.high);
  for (int k = 0; k < T; ++k) {
    const __m512 sl = _mm512_add_ps(_mm512_add_ps(al[k][0], al[k][1]), _mm512_add_ps(al[k][2], al[k][3]));
    const __m512 sh = _mm512_add_ps(_mm512_add_ps(ah[k][0], ah[k][1]), _mm512_add_ps(ah[k][2], ah[k][3]));
    _mm512_mask_storeu_ps(y + (t0 + k) * y_stride, rows, _mm512_add_ps(_mm512_mul_ps(low, sl), _mm512_mul_ps(high, sh)));
  }
}

MOEC_AVX512 void product_avx512(const uint32_t* planes, int64_t words, const Sub1Activations& tables, const BlockLevels& lv,
                                float* y, int64_t y_stride) {
  int64_t t = 0;
  for (; t + 2 <= tables.tokens(); t += 2) product_tokens_avx512<2>(planes, words, tables, t, lv, y, y_stride);
  if (t < tables.tokens()) product_tokens_avx512<1>(planes, words, tables, t, lv, y, y_stride);
}

// As position_sum8 and lane_row_avx2, 16 tokens per vector.
MOEC_AVX512 inline __m512 position_sum16(const float* xg, const uint32_t* list, int64_t n) {
  __m512 s[8];
  for (int k = 0; k < 8; ++k) s[k] = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] = _mm512_add_ps(s[k], _mm512_load_ps(xg + 16 * size_t(list[i + k])));
  return _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3])),
                       _mm512_add_ps(_mm512_add_ps(s[4], s[5]), _mm512_add_ps(s[6], s[7])));
}

MOEC_AVX512 void lane_row_avx512(const Sub1Activations& a, const uint32_t* lo, int64_t n_lo, const uint32_t* hi,
                                 int64_t n_hi, float low, float high, float* y, int64_t y_stride) {
  for (int64_t g = 0; g * 16 < a.tokens(); ++g) {
    alignas(64) float out[16];
    _mm512_store_ps(out, _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(low), position_sum16(a.lane_group(g), lo, n_lo)),
                                       _mm512_mul_ps(_mm512_set1_ps(high), position_sum16(a.lane_group(g), hi, n_hi))));
    for (int64_t t = 16 * g; t < std::min<int64_t>(16 * g + 16, a.tokens()); ++t) y[t * y_stride] = out[t - 16 * g];
  }
}

MOEC_AVX512 inline __m512 weights16(const uint8_t* trits, __m512 table) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(trits));
  return _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(bytes), table);
}

MOEC_AVX512 void dequantize_block_avx512(const Sub1View& w, int64_t b, float* out) {
  uint8_t* trits = block_buffer(w);
  decode_block_avx512(w, b, trits);
  for (int64_t i = 0; i < w.rows_in_block(b); ++i) {
    const int64_t r = b * kSub1BlockRows + i;
    const __m512 table = _mm512_setr_ps(w.low(r), 0.0f, w.high(r), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const uint8_t* row = trits + i * w.cols;
    float* o = out + i * w.cols;
    int64_t c = 0;
    for (; c + 16 <= w.cols; c += 16) _mm512_storeu_ps(o + c, weights16(row + c, table));
    if (c < w.cols) _mm512_mask_storeu_ps(o + c, __mmask16((1u << (w.cols - c)) - 1), weights16(row + c, table));
  }
}

#endif  // __x86_64__

void decode_planes(const Sub1View& w, int64_t b, uint32_t* planes, Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512) return decode_planes_avx512(w, b, planes);
  if (isa == Isa::Avx2) return decode_planes_avx2(w, b, planes);
#endif
  decode_planes_portable(w, b, planes);
}

void product(const uint32_t* planes, int64_t words, const Sub1Activations& a, const BlockLevels& lv, int64_t cols,
             float* y, int64_t y_stride, Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512)
    return a.tables() ? product_avx512(planes, words, a, lv, y, y_stride)
                      : lanes(planes, words, a, lv, cols, y, y_stride, lane_row_avx512);
  if (isa == Isa::Avx2) {
    if (!a.tables()) return lanes(planes, words, a, lv, cols, y, y_stride, lane_row_avx2);
    return a.lanes() > 1 ? product_lane_groups_avx2(planes, words, a, lv, y, y_stride)
                         : product_avx2(planes, words, a, lv, y, y_stride);
  }
#endif
  if (a.tables()) return product_portable(planes, words, a, lv, y, y_stride);
  lanes(planes, words, a, lv, cols, y, y_stride, lane_row_portable);
}

// Block b's levels: the vector version on CPUs with AVX2 (AVX-512 ones
// too), the same floats as the scalar one.
BlockLevels block_levels(const Sub1View& w, int64_t b, Isa isa) {
#if defined(__x86_64__)
  if (isa != Isa::Portable) return block_levels_avx2(w, b);
#endif
  return BlockLevels(w, b);
}

// Lanes per token group of the batches above kSub1TableMaxTokens.
int lanes_of(Isa isa) { return isa == Isa::Avx512 ? 16 : isa == Isa::Avx2 ? 8 : 1; }

// Lanes of the lookup tables: AVX2 puts 2..kSub1TableMaxTokens tokens in
// groups of 8 lanes (product_lanes_avx2), a group of ≤ 4 tokens in 4 (xmm:
// on Zen 1 half the work of a ymm); one token, AVX-512 and portable code
// keep a table per token.
int table_lanes(int64_t tokens, Isa isa) {
  if (isa != Isa::Avx2 || tokens < 2) return 1;
  return tokens <= 4 ? 4 : 8;
}

}  // namespace

uint64_t Sub1BlockPlanes::bytes() const { return sizeof(*this) + bits.capacity() * sizeof(uint32_t); }

float* Sub1Activations::allocate(size_t floats) {
  // 64-byte aligned: a table or a lane group is one aligned load (both
  // strides are multiples of 16 floats).
  floats = std::max<size_t>((floats + 15) / 16 * 16, 16);
  if (floats > capacity_) {
    capacity_ = 0;  // a failed allocation leaves no buffer behind: nothing may use the old size
    cols_ = -1;
    buffer_.reset(static_cast<float*>(std::aligned_alloc(64, floats * sizeof(float))));
    if (!buffer_) fail("sub1 kernels: out of memory for the activations of {} tokens", tokens_);
    capacity_ = floats;
  }
  return buffer_.get();
}

void Sub1Activations::prepare(const float* x, int64_t x_stride, int64_t tokens, int64_t cols, Isa isa) {
  cols_ = -1;  // fits nothing until prepared (allocate may throw)
  tokens_ = tokens;
  isa_ = isa;
  if (!tables()) {  // [groups][cols + 1][lanes], column cols and the last group's missing tokens zero
    lanes_ = last_lanes_ = lanes_of(isa);
    const int64_t groups = (tokens + lanes_ - 1) / lanes_;
    per_group_ = (cols + 1) * lanes_;
    if (lanes_ > 1) per_group_ = (per_group_ + 15) / 16 * 16;
    float* out = allocate(size_t(groups * per_group_));
    std::fill(out, out + groups * per_group_, 0.0f);
    for (int64_t t = 0; t < tokens; ++t) {
      float* o = out + (t / lanes_) * per_group_ + t % lanes_;
      const float* in = x + t * x_stride;
      for (int64_t c = 0; c < cols; ++c) o[c * lanes_] = in[c];
    }
    cols_ = cols;
    return;
  }
  const int64_t groups = kGroupsPerWord * sub1_plane_words(cols);
  lanes_ = last_lanes_ = table_lanes(tokens, isa);
#if defined(__x86_64__)
  if (lanes_ > 1) {  // [token groups][groups][16][lanes]; a padding lane is zero
    per_group_ = groups * kTableFloats * lanes_;
    const int64_t token_groups = (tokens + lanes_ - 1) / lanes_;
    float* out = allocate(size_t(token_groups * per_group_));
    last_lanes_ = tokens - (token_groups - 1) * lanes_ <= 4 ? 4 : lanes_;
    for (int64_t tg = 0; tg < token_groups; ++tg) {
      const int n = int(std::min<int64_t>(lanes_, tokens - tg * lanes_));
      const float* xg = x + tg * lanes_ * x_stride;
      if (group_lanes(tg) == 4) lane_tables_avx2<4>(xg, x_stride, n, cols, groups, out + tg * per_group_);
      else lane_tables_avx2<8>(xg, x_stride, n, cols, groups, out + tg * per_group_);
    }
    cols_ = cols;
    return;
  }
#endif
  per_token_ = groups * kTableFloats;
  float* buffer = allocate(size_t(tokens * per_token_));
  for (int64_t t = 0; t < tokens; ++t) {
    float* out = buffer + t * per_token_;
#if defined(__x86_64__)
    if (isa == Isa::Avx512) {
      tables_avx512(x + t * x_stride, cols, groups, out);
      continue;
    }
    if (isa == Isa::Avx2) {  // one token (more go in lanes): byte-sliced for product_avx2
      tables_avx2(x + t * x_stride, cols, groups, out);
      byte_slice_tables_avx2(out, groups);
      continue;
    }
#endif
    tables_portable(x + t * x_stride, cols, groups, out);
  }
  cols_ = cols;
}

void sub1_linear_blocks(const Sub1View& w, int64_t block0, int64_t n_blocks, const float* x, int64_t x_stride,
                        int64_t tokens, float* y, int64_t y_stride, Isa isa, Sub1BlockPlanes* planes,
                        const Sub1Activations* prepared) {
  if (!isa_supported(isa)) fail("sub1 kernels: this CPU has no {}", isa_name(isa));
  if (tokens <= 0 || n_blocks <= 0) return;
  const Sub1Activations* a = prepared;
  if (a == nullptr || !a->fits(w.cols, tokens, isa)) {
    thread_local Sub1Activations local;
    local.prepare(x, x_stride, tokens, w.cols, isa);
    a = &local;
  }
  const int64_t words = sub1_plane_words(w.cols);
  const size_t plane_u32 = size_t(words * kPlaneStride);
  thread_local std::vector<uint32_t> scratch;
  for (int64_t b = block0; b < block0 + n_blocks; ++b) {
    Sub1BlockPlanes* kept = planes ? &planes[b - block0] : nullptr;
    const uint32_t* p;
    if (kept && kept->ready) {
      p = kept->bits.data();
    } else {
      std::vector<uint32_t>& out = kept ? kept->bits : scratch;
      out.resize(plane_u32);  // the decoder writes every row of the block; rows past its end stay zero
      if (w.rows_in_block(b) < kSub1BlockRows) std::fill(out.begin(), out.end(), 0u);
      decode_planes(w, b, out.data(), isa);
      if (kept) kept->ready = true;
      p = out.data();
    }
    product(p, words, *a, block_levels(w, b, isa), w.cols, y + b * kSub1BlockRows, y_stride, isa);
  }
}

void sub1_dequantize_block(const Sub1View& w, int64_t b, float* out, Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512 && isa_supported(isa)) return dequantize_block_avx512(w, b, out);
  if (isa == Isa::Avx2 && isa_supported(isa)) return dequantize_block_avx2(w, b, out);
#endif
  dequantize_block_portable(w, b, out);
}

}  // namespace moec
