#include "quant/sub1_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "io/error.h"
#include "io/x86_simd.h"

namespace moec {
namespace {

constexpr int64_t kSlack = 64;  // decode buffer bytes past the block's trits
constexpr int kTokenGroup = 4;  // tokens sharing one pass over a row's trits (dense design)

// ---- the sparse table ---------------------------------------------------------

constexpr int kEntryBytes = 16;
constexpr int kMaxPerLevel = 7;
constexpr int kLowAt = 2, kHighAt = 2 + kMaxPerLevel;  // byte offsets of the position lists
constexpr int64_t kSparseMaxCols = 65000;                // positions < cols + 64 fit a u16
constexpr int64_t kListSlack = 8;                      // each append stores 8 positions
constexpr int64_t kPrefetch = 8;                       // codewords ahead (measured: 6-12 alike, 24 slower)

bool sparse_usable(const Sub1View& w) { return w.codebook.sparse != nullptr && w.cols <= kSparseMaxCols; }

// The last level combination, shared by every path so they round alike
// (this file is compiled with -ffp-contract=off: never fused into an FMA).
inline float combine(float low, float sum_low, float high, float sum_high) {
  const float a = low * sum_low;
  const float b = high * sum_high;
  return a + b;
}

// Positions of one row: a row's codewords append to these; the last one may
// run into the next row, whose positions (≥ cols) are carried over.
struct RowLists {
  std::vector<uint16_t> low, high;
  int64_t n_low = 0, n_high = 0;
  void reserve(int64_t cols) {
    const size_t need = size_t(cols + kSub1MaxWordTrits + kListSlack);
    if (low.size() < need) {
      low.resize(need);
      high.resize(need);
    }
  }
};

// Appends the positions of the codewords at *word.. to the lists at lo and
// hi until the row's `cols` trits are covered or the block's codewords end;
// pos counts the row's trits. Per codeword, two copies of 8 positions with
// the codeword's start added (the stores write 8, the counts say how many
// are real: the lists have room for the excess). The table is read at random
// (1 MiB, mostly not in L2): entries are prefetched kPrefetch codewords ahead.
struct ListCursor {
  const uint16_t* word;
  int64_t pos;
  uint16_t *lo, *hi;
};

inline void advance(const uint8_t* e, ListCursor& c) {
  c.lo += e[1] & 15;
  c.hi += e[1] >> 4;
  c.pos += e[0];
}

// The prefetching part of a row's loop ends kPrefetch codewords before the
// block's end.
inline const uint16_t* prefetch_end(const uint16_t* word, const uint16_t* end) {
  return end - word > kPrefetch ? end - kPrefetch : word;
}

#if defined(__x86_64__)
// SSE2 (every x86-64).
inline void append_sse2(const uint8_t* e, ListCursor& c) {
  const __m128i p = _mm_set1_epi16(short(c.pos));
  const __m128i l = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(e + kLowAt));
  const __m128i h = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(e + kHighAt));  // 1 byte into the next entry
  _mm_storeu_si128(reinterpret_cast<__m128i*>(c.lo), _mm_add_epi16(_mm_unpacklo_epi8(l, _mm_setzero_si128()), p));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(c.hi), _mm_add_epi16(_mm_unpacklo_epi8(h, _mm_setzero_si128()), p));
  advance(e, c);
}

__attribute__((target("avx2"))) inline void append_avx2(const uint8_t* e, ListCursor& c) {
  const __m128i p = _mm_set1_epi16(short(c.pos));  // vpbroadcastw
  const __m128i l = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(e + kLowAt)));
  const __m128i h = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(e + kHighAt)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(c.lo), _mm_add_epi16(l, p));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(c.hi), _mm_add_epi16(h, p));
  advance(e, c);
}

__attribute__((target("avx2"))) void list_row_avx2(const uint8_t* table, const uint16_t* end, int64_t cols,
                                                   ListCursor& cursor) {
  ListCursor c = cursor;  // a local: the vector stores may alias anything
  for (const uint16_t* safe = prefetch_end(c.word, end); c.pos < cols && c.word < safe;) {
    __builtin_prefetch(table + size_t(c.word[kPrefetch]) * kEntryBytes);
    append_avx2(table + size_t(*c.word++) * kEntryBytes, c);
  }
  while (c.pos < cols && c.word < end) append_avx2(table + size_t(*c.word++) * kEntryBytes, c);
  cursor = c;
}
#else
inline void append_sse2(const uint8_t* e, ListCursor& c) {  // the portable version, named for the dispatcher
  for (int i = 0; i < 8; ++i) {
    c.lo[i] = uint16_t(e[kLowAt + i] + c.pos);
    c.hi[i] = uint16_t(e[kHighAt + i] + c.pos);
  }
  advance(e, c);
}
#endif

void list_row_portable(const uint8_t* table, const uint16_t* end, int64_t cols, ListCursor& cursor) {
  ListCursor c = cursor;
  for (const uint16_t* safe = prefetch_end(c.word, end); c.pos < cols && c.word < safe;) {
    __builtin_prefetch(table + size_t(c.word[kPrefetch]) * kEntryBytes);
    append_sse2(table + size_t(*c.word++) * kEntryBytes, c);
  }
  while (c.pos < cols && c.word < end) append_sse2(table + size_t(*c.word++) * kEntryBytes, c);
  cursor = c;
}

using ListRowFn = void (*)(const uint8_t*, const uint16_t*, int64_t, ListCursor&);

// Number of leading positions < cols (the lists are ascending).
inline int64_t split_at(const uint16_t* list, int64_t n, int64_t cols) {
  while (n > 0 && list[n - 1] >= cols) --n;
  return n;
}

// Moves positions [keep, n) to the front, less cols: the next row's.
inline int64_t carry(uint16_t* list, int64_t keep, int64_t n, int64_t cols) {
  for (int64_t i = keep; i < n; ++i) list[i - keep] = uint16_t(list[i] - cols);
  return n - keep;
}

// Walks block b row by row: after next(), the positions of the row's
// nonzeros of either level (ascending).
class SparseRows {
 public:
  SparseRows(const Sub1View& w, int64_t b, ListRowFn list_row = list_row_portable)
      : w_(w), list_row_(list_row), word_(w.words + w.blocks[b]), end_(w.words + w.blocks[b + 1]),
        rows_(w.rows_in_block(b)) {
    lists().reserve(w.cols);
    lists().n_low = lists().n_high = 0;
  }
  bool next() {
    RowLists& l = lists();
    if (row_ > 0) {  // carry the previous row's spill
      l.n_low = carry(l.low.data(), n_low_, l.n_low, w_.cols);
      l.n_high = carry(l.high.data(), n_high_, l.n_high, w_.cols);
      pos_ -= w_.cols;
    }
    if (row_ == rows_) return false;
    ListCursor c{word_, pos_, l.low.data() + l.n_low, l.high.data() + l.n_high};  // locals: no aliasing
    list_row_(w_.codebook.sparse, end_, w_.cols, c);
    l.n_low = c.lo - l.low.data();
    l.n_high = c.hi - l.high.data();
    word_ = c.word;
    pos_ = c.pos < w_.cols ? w_.cols : c.pos;  // a short (malformed) stream: zeros
    n_low_ = split_at(l.low.data(), l.n_low, w_.cols);
    n_high_ = split_at(l.high.data(), l.n_high, w_.cols);
    ++row_;
    return true;
  }
  int64_t row() const { return row_ - 1; }  // of the block
  const uint16_t* low() const { return lists().low.data(); }
  const uint16_t* high() const { return lists().high.data(); }
  int64_t n_low() const { return n_low_; }
  int64_t n_high() const { return n_high_; }

 private:
  static RowLists& lists() {
    thread_local RowLists l;
    return l;
  }
  const Sub1View& w_;
  ListRowFn list_row_;
  const uint16_t *word_, *end_;
  int64_t rows_, row_ = 0, pos_ = 0, n_low_ = 0, n_high_ = 0;
};

// Σ x[list[i]] for one token: eight partial sums, element i into sum
// i mod 8, added as ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)) — the
// order every path keeps (for many tokens, a vector per partial sum, a lane
// per token). Eight independent chains: 2.2× faster than four (measured).
inline float gather_sum(const float* x, const uint16_t* list, int64_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += x[list[i + k]];
  for (int k = 0; k < 7; ++k)  // constant indices keep s in registers
    if (i + k < n) s[k] += x[list[i + k]];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// One call's activations as an ISA's row function wants them, and where
// its results go.
struct SparseProduct {
  const Sub1View* w;
  const float* x;      // [tokens, x_stride], or transposed [groups][cols + 1][lanes] (lanes > 1)
  int64_t x_stride, tokens;
  int lanes;           // 1: x as given; 8/16: transposed
  float* y;
  int64_t y_stride;
};

// A row of the matrix: the positions of its nonzeros and its two levels.
struct SparseRow {
  int64_t r;
  const uint16_t* lo;
  int64_t n_lo;
  const uint16_t* hi;
  int64_t n_hi;
  float low, high;
};

// Writes y for one row.
using SparseRowFn = void (*)(const SparseProduct&, const SparseRow&);

void sparse_row_portable(const SparseProduct& p, const SparseRow& row) {
  for (int64_t t = 0; t < p.tokens; ++t) {
    const float* xt = p.x + t * p.x_stride;
    p.y[t * p.y_stride + row.r] =
        combine(row.low, gather_sum(xt, row.lo, row.n_lo), row.high, gather_sum(xt, row.hi, row.n_hi));
  }
}

// Appends a row's list to recorded lists, padded to a multiple of 8 with
// position `cols`: replays read activations with a zero there (+0.0 leaves
// a partial sum's bits unchanged), so their sums have no ragged tail.
void record_list(Sub1BlockLists& l, const uint16_t* list, int64_t n, int64_t cols) {
  l.positions.insert(l.positions.end(), list, list + n);
  for (int64_t i = n; i % 8; ++i) l.positions.push_back(uint16_t(cols));
  l.ends.push_back(uint32_t(l.positions.size()));
}

// Blocks [block0, block0 + n_blocks): rows decoded into position lists, or
// replayed from `lists` (one per block) when they hold a block already; a
// block decoded with `lists` given is recorded there.
void sparse_blocks(const Sub1View& w, int64_t block0, int64_t n_blocks, const SparseProduct& p, SparseRowFn row,
                   ListRowFn list_row, Sub1BlockLists* lists) {
  for (int64_t b = block0; b < block0 + n_blocks; ++b) {
    Sub1BlockLists* l = lists ? &lists[b - block0] : nullptr;
    if (l && l->ready) {
      uint32_t begin = 0;
      for (int64_t i = 0; i < w.rows_in_block(b); ++i) {
        const uint32_t lo_end = l->ends[2 * i], hi_end = l->ends[2 * i + 1];
        const uint16_t* pos = l->positions.data();
        row(p, {b * kSub1BlockRows + i, pos + begin, lo_end - begin, pos + lo_end, hi_end - lo_end, l->levels[2 * i],
                l->levels[2 * i + 1]});
        begin = hi_end;
      }
      continue;
    }
    if (l) {
      l->positions.clear();
      l->ends.clear();
      l->levels.clear();
    }
    for (SparseRows rows(w, b, list_row); rows.next();) {
      const int64_t r = b * kSub1BlockRows + rows.row();
      const float low = w.low(r), high = w.high(r);
      row(p, {r, rows.low(), rows.n_low(), rows.high(), rows.n_high(), low, high});
      if (l) {
        l->levels.push_back(low);
        l->levels.push_back(high);
        record_list(*l, rows.low(), rows.n_low(), w.cols);
        record_list(*l, rows.high(), rows.n_high(), w.cols);
      }
    }
    if (l) {
      l->positions.shrink_to_fit();
      l->ready = true;
    }
  }
}

// The per-row epilogue of the vector paths: lane t of the sums is token t.
inline void store_rows(const SparseRow& row, const float* sum_lo, const float* sum_hi, int64_t tokens, float* y,
                       int64_t y_stride) {
  for (int64_t t = 0; t < tokens; ++t) y[t * y_stride + row.r] = combine(row.low, sum_lo[t], row.high, sum_hi[t]);
}

// ---- dense design, portable -------------------------------------------------

uint8_t* block_buffer(const Sub1View& w) {
  thread_local std::vector<uint8_t> buffer;
  const size_t need = size_t(kSub1BlockRows * w.cols + kSlack);
  if (buffer.size() < need) buffer.resize(need);
  return buffer.data();
}

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

void dequantize_block_portable(const Sub1View& w, int64_t b, float* out) {
  uint8_t* trits = block_buffer(w);
  decode_sub1_block(w, b, trits);
  for (int64_t i = 0; i < w.rows_in_block(b); ++i) {
    const int64_t r = b * kSub1BlockRows + i;
    const float level[3] = {w.low(r), 0.0f, w.high(r)};
    for (int64_t c = 0; c < w.cols; ++c) out[i * w.cols + c] = level[trits[i * w.cols + c]];
  }
}

#if defined(__x86_64__)
// ---- AVX2 -------------------------------------------------------------------

#define MOEC_AVX2 __attribute__((target("avx2,fma,bmi")))

// Sparse design, 2..N tokens: lanes are tokens of [cols + 1][8] activations.
MOEC_AVX2 inline __m256 gather_sum8(const float* xt, const uint16_t* list, int64_t n) {
  __m256 s[8];
  for (int k = 0; k < 8; ++k) s[k] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] = _mm256_add_ps(s[k], _mm256_loadu_ps(xt + 8 * size_t(list[i + k])));
  for (int k = 0; k < 7; ++k)
    if (i + k < n) s[k] = _mm256_add_ps(s[k], _mm256_loadu_ps(xt + 8 * size_t(list[i + k])));
  return _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3])),
                       _mm256_add_ps(_mm256_add_ps(s[4], s[5]), _mm256_add_ps(s[6], s[7])));
}

MOEC_AVX2 void sparse_row_avx2(const SparseProduct& p, const SparseRow& row) {
  const int64_t cols = p.w->cols;
  for (int64_t g = 0; g * 8 < p.tokens; ++g) {
    alignas(32) float sum_lo[8], sum_hi[8];
    _mm256_store_ps(sum_lo, gather_sum8(p.x + g * 8 * (cols + 1), row.lo, row.n_lo));
    _mm256_store_ps(sum_hi, gather_sum8(p.x + g * 8 * (cols + 1), row.hi, row.n_hi));
    store_rows(row, sum_lo, sum_hi, std::min<int64_t>(8, p.tokens - 8 * g), p.y + 8 * g * p.y_stride,
               p.y_stride);
  }
}

MOEC_AVX2 inline __m256i trits32(__m256i low, __m256i high, __m256i spread, __m256i bits) {
  const __m256i l = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(low, spread), bits), bits);
  const __m256i h = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(high, spread), bits), bits);
  return _mm256_add_epi8(_mm256_sub_epi8(_mm256_set1_epi8(1), h), l);  // compare results are −1
}

// Dense design: a codeword's two 64-bit masks to 64 trit bytes. Each 32-byte
// half: the mask bytes spread 8 times (shuffle), one bit per byte kept
// (and), compared to a byte of 0xFF; trit = 1 + high − low.
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
  const uint16_t* words = w.words + w.blocks[b];
  const int64_t n_words = int64_t(w.blocks[b + 1]) - int64_t(w.blocks[b]), n = w.rows_in_block(b) * w.cols;
  int64_t pos = 0;
  for (int64_t k = 0; k < n_words && pos < n; ++k) pos += store_word_avx2(masks + 2 * words[k], out + pos);
  for (; pos < n; ++pos) out[pos] = 1;  // a short (malformed) stream: zeros
}

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

// Decodes a block a row at a time into a buffer of cols + 128 bytes, so each
// row's trits are still in L1 when the dot products read them: the codeword
// that runs past the row's end leaves its excess (< 64 trits) behind the
// row, which is moved to the front for the next row.
MOEC_AVX2 void linear_block_avx2(const Sub1View& w, int64_t b, const float* x, int64_t x_stride, int64_t tokens,
                                 float* y, int64_t y_stride) {
  thread_local std::vector<uint8_t> buffer;
  if (buffer.size() < size_t(w.cols + 2 * kSlack)) buffer.resize(size_t(w.cols + 2 * kSlack));
  uint8_t* trits = buffer.data();
  const uint64_t* masks = w.codebook.masks;
  const uint16_t* word = w.words + w.blocks[b];
  const uint16_t* end = w.words + w.blocks[b + 1];
  int64_t pos = 0;  // trits of the current row already in the buffer
  for (int64_t i = 0; i < w.rows_in_block(b); ++i) {
    for (; pos < w.cols && word < end; ++word) pos += store_word_avx2(masks + 2 * *word, trits + pos);
    for (; pos < w.cols; ++pos) trits[pos] = 1;  // a short (malformed) stream: zeros
    const int64_t r = b * kSub1BlockRows + i;
    const float level[3] = {w.low(r), 0.0f, w.high(r)};
    const __m256 table = _mm256_setr_ps(level[0], 0.0f, level[2], 0.0f, 0.0f, 0.0f, 0.0f, 0.0f);
    int64_t t = 0;
    for (; t + kTokenGroup <= tokens; t += kTokenGroup)
      dot_avx2<kTokenGroup>(trits, table, level, x + t * x_stride, x_stride, w.cols, y + t * y_stride + r, y_stride);
    for (; t < tokens; ++t) dot_avx2<1>(trits, table, level, x + t * x_stride, x_stride, w.cols, y + t * y_stride + r, y_stride);
    std::memmove(trits, trits + w.cols, kSlack);  // the spill starts the next row
    pos -= w.cols;
  }
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

#define MOEC_AVX512 __attribute__((target("avx512f,avx512bw,avx2,fma,bmi")))

// Sparse design, 2..N tokens: lanes are tokens of [cols + 1][16] activations.
MOEC_AVX512 inline __m512 gather_sum16(const float* xt, const uint16_t* list, int64_t n) {
  __m512 s[8];
  for (int k = 0; k < 8; ++k) s[k] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] = _mm512_add_ps(s[k], _mm512_loadu_ps(xt + 16 * size_t(list[i + k])));
  for (int k = 0; k < 7; ++k)
    if (i + k < n) s[k] = _mm512_add_ps(s[k], _mm512_loadu_ps(xt + 16 * size_t(list[i + k])));
  return _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3])),
                       _mm512_add_ps(_mm512_add_ps(s[4], s[5]), _mm512_add_ps(s[6], s[7])));
}

MOEC_AVX512 void sparse_row_avx512(const SparseProduct& p, const SparseRow& row) {
  const int64_t cols = p.w->cols;
  for (int64_t g = 0; g * 16 < p.tokens; ++g) {
    alignas(64) float sum_lo[16], sum_hi[16];
    _mm512_store_ps(sum_lo, gather_sum16(p.x + g * 16 * (cols + 1), row.lo, row.n_lo));
    _mm512_store_ps(sum_hi, gather_sum16(p.x + g * 16 * (cols + 1), row.hi, row.n_hi));
    store_rows(row, sum_lo, sum_hi, std::min<int64_t>(16, p.tokens - 16 * g), p.y + 16 * g * p.y_stride,
               p.y_stride);
  }
}

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
  const uint16_t* words = w.words + w.blocks[b];
  const int64_t n_words = int64_t(w.blocks[b + 1]) - int64_t(w.blocks[b]), n = w.rows_in_block(b) * w.cols;
  const __m512i one = _mm512_set1_epi8(1), zero = _mm512_setzero_si512(), two = _mm512_set1_epi8(2);
  int64_t pos = 0;
  for (int64_t k = 0; k < n_words && pos < n; ++k) pos += store_word(masks + 2 * words[k], out + pos, one, zero, two);
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

// As linear_block_avx2: a row at a time, the spill moved to the front.
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
    std::memmove(trits, trits + w.cols, kSlack);  // the spill starts the next row
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

}  // namespace

uint64_t sub1_sparse_table_bytes(uint32_t size) { return uint64_t(size) * kEntryBytes + kEntryBytes; }

bool sub1_build_sparse_table(const Sub1Codebook& cb, uint8_t* table) {
  std::memset(table, 0, sub1_sparse_table_bytes(cb.size));
  for (uint32_t w = 0; w < cb.size; ++w) {
    uint8_t* e = table + size_t(w) * kEntryBytes;
    const int length = sub1_word_length(cb, w);
    uint8_t lo[kMaxPerLevel], hi[kMaxPerLevel];
    int n_lo = 0, n_hi = 0;
    for (int i = 0; i < length; ++i) {
      const int t = sub1_word_trit(cb, w, i);
      if (t == 1) continue;
      int& n = t == 0 ? n_lo : n_hi;
      if (n == kMaxPerLevel) return false;
      (t == 0 ? lo : hi)[n++] = uint8_t(i);
    }
    e[0] = uint8_t(length);
    e[1] = uint8_t(n_lo | n_hi << 4);
    for (int i = 0; i < n_lo; ++i) e[kLowAt + i] = uint8_t(lo[i]);
    for (int i = 0; i < n_hi; ++i) e[kHighAt + i] = uint8_t(hi[i]);
  }
  return true;
}

const char* sub1_design(const Sub1View& w) { return sparse_usable(w) ? "sparse" : "dense"; }
bool sub1_uses_sparse_design(const Sub1View& w) { return sparse_usable(w); }

namespace {

// Token lanes of the sparse design's vector paths: several tokens are
// transposed into 8 (AVX2) or 16 (AVX-512) lanes; one token reads x as
// given (the same sums on every ISA).
int sparse_lanes(Isa isa, int64_t tokens) {
  if (isa == Isa::Portable || tokens == 1) return 1;
  return isa == Isa::Avx512 ? 16 : 8;
}

void sparse_linear(const Sub1View& w, int64_t block0, int64_t n_blocks, const Sub1Activations& a, float* y,
                   int64_t y_stride, Isa isa, Sub1BlockLists* lists) {
  SparseProduct p{&w, a.x(), a.x_stride(), a.tokens(), a.lanes(), y, y_stride};
  SparseRowFn row = sparse_row_portable;
  ListRowFn list_row = list_row_portable;
#if defined(__x86_64__)
  if (isa != Isa::Portable) list_row = list_row_avx2;
  if (a.lanes() > 1) row = a.lanes() == 16 ? sparse_row_avx512 : sparse_row_avx2;
#endif
  sparse_blocks(w, block0, n_blocks, p, row, list_row, lists);
}

}  // namespace

void Sub1Activations::prepare(const Sub1View& w, const float* x, int64_t x_stride, int64_t tokens, bool for_lists,
                              Isa isa) {
  cols_ = w.cols;
  tokens_ = tokens;
  lanes_ = sparse_lanes(isa, tokens);
  for_lists_ = for_lists;
  x_ = x;
  x_stride_ = x_stride;
  if (lanes_ > 1) {  // [groups][cols + 1][lanes], tokens padded to whole groups, column cols zero
    const int64_t groups = (tokens + lanes_ - 1) / lanes_;
    buffer_.assign(size_t(groups * (w.cols + 1) * lanes_), 0.0f);
    for (int64_t t = 0; t < tokens; ++t) {
      float* out = buffer_.data() + (t / lanes_) * (w.cols + 1) * lanes_ + t % lanes_;
      const float* in = x + t * x_stride;
      for (int64_t c = 0; c < w.cols; ++c) out[c * lanes_] = in[c];
    }
    x_ = buffer_.data();
  } else if (for_lists) {  // recorded lists are padded with position cols: rows with a zero there
    buffer_.resize(size_t(tokens * (w.cols + 1)));
    for (int64_t t = 0; t < tokens; ++t) {
      std::copy(x + t * x_stride, x + t * x_stride + w.cols, buffer_.data() + t * (w.cols + 1));
      buffer_[size_t(t * (w.cols + 1) + w.cols)] = 0.0f;
    }
    x_ = buffer_.data();
    x_stride_ = w.cols + 1;
  }
}

bool Sub1Activations::fits(const Sub1View& w, int64_t tokens, bool for_lists, Isa isa) const {
  return cols_ == w.cols && tokens_ == tokens && lanes_ == sparse_lanes(isa, tokens) && for_lists_ == for_lists;
}

void sub1_linear_blocks(const Sub1View& w, int64_t block0, int64_t n_blocks, const float* x, int64_t x_stride,
                        int64_t tokens, float* y, int64_t y_stride, Isa isa, Sub1BlockLists* lists,
                        const Sub1Activations* prepared) {
  if (!isa_supported(isa)) fail("sub1 kernels: this CPU has no {}", isa_name(isa));
  if (tokens <= 0 || n_blocks <= 0) return;
  if (sparse_usable(w)) {
    if (prepared && prepared->fits(w, tokens, lists != nullptr, isa))
      return sparse_linear(w, block0, n_blocks, *prepared, y, y_stride, isa, lists);
    thread_local Sub1Activations local;
    local.prepare(w, x, x_stride, tokens, lists != nullptr, isa);
    return sparse_linear(w, block0, n_blocks, local, y, y_stride, isa, lists);
  }
  for (int64_t b = block0; b < block0 + n_blocks; ++b) {
#if defined(__x86_64__)
    if (isa == Isa::Avx512) {
      linear_block_avx512(w, b, x, x_stride, tokens, y, y_stride);
      continue;
    }
    if (isa == Isa::Avx2) {
      linear_block_avx2(w, b, x, x_stride, tokens, y, y_stride);
      continue;
    }
#endif
    linear_block_portable(w, b, x, x_stride, tokens, y, y_stride);
  }
}

uint64_t Sub1BlockLists::bytes() const {
  return sizeof(*this) + positions.capacity() * sizeof(uint16_t) + ends.capacity() * sizeof(uint32_t) +
         levels.capacity() * sizeof(float);
}

void sub1_dequantize_block(const Sub1View& w, int64_t b, float* out, Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512 && isa_supported(isa)) return dequantize_block_avx512(w, b, out);
  if (isa == Isa::Avx2 && isa_supported(isa)) return dequantize_block_avx2(w, b, out);
#endif
  dequantize_block_portable(w, b, out);
}

}  // namespace moec
