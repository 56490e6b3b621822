// Fused CPU kernels over sub1 matrices (quant/sub1.h): decode a block of 16
// rows into bit planes and multiply it with 1..N activation rows by table
// lookups while the block is in cache, never materializing its weights.
//
// Design (T-MAC-style lookup tables, one for every ISA and batch size):
//
// Bit planes. A block's trits become two bit planes, one for the low level
// and one for the high level: bit c of a row's plane is set where trit c is
// that level. Layout, u32 words: [word w][plane low, high][row 0..15], word w
// covering columns 32w..32w+31 (bit j = column 32w + j; bits past the last
// column and rows past the last row are zero). 2 bits per weight, 1/8 of
// bf16; this is also what the expert cache (model/sub1_plane_cache.h) keeps,
// so a cache hit skips the Tunstall decoding and reads 1/8 of what a bf16
// product reads.
//
// Tables. Per token and group of 4 columns g, the 16 subset sums
// T[g][i] = Σ_{bit b of i set} x[4g + b], each summed from 0 in the order
// b = 0..3 (x past the last column reads as 0): 64 bytes per 4 columns per
// token, built once per product (Sub1Activations) and shared by its row
// tiles. (Batches above kSub1TableMaxTokens: see there.)
//
// Product. A row's sum over a plane is Σ_g T[g][nibble g of the plane],
// accumulated in four partial sums (group g into sum g mod 4) added as
// (s0 + s1) + (s2 + s3); y = low · S_low + high · S_high. Lanes are rows:
// AVX-512 looks a nibble up for 16 rows with one vpermps (its 16-entry table
// is one register); AVX2 one token looks it up for 8 rows and both planes
// with pshufb over byte-sliced tables (each group's 16 floats stored as four
// 16-byte vectors, vector b holding byte b of every entry; 4 pshufb and
// unpacks rebuild 16 floats), portable C++ one row at a time.
// AVX2 with 2..16 tokens puts tokens in lanes instead (4 or 8 per xmm/ymm
// vector; the tables interleaved [token group][g][entry][lane]): a row's
// nibble selects one vector of that entry for 4 or 8 tokens, one add and no
// permute, which is what CPUs with slow 256-bit permutes (AMD Zen 1/2) need.
// Per 64 weights and token that is 2 lookups and 2 adds on AVX-512 (a bf16
// product: 4 widenings and 4 FMAs), with no work that grows with the
// nonzeros and no limit on the dictionary or the width.
//   Every path does the same float additions in the same order for each
// (row, token), so results are bit-identical across ISAs, thread counts,
// batch sizes and cache replays (tested), which is what lets serve/ batch
// sequences without changing any sequence's output.
//
// Decoding (per ISA): a block's codewords are expanded to trit bytes
// (AVX-512: masked byte blends; AVX2: shuffle + compare of the codeword's
// bit masks; portable: the reference decoder), each codeword's 64 trits
// stored whole (the next one overwrites the excess; the buffer has 64 bytes
// of slack), and each row's 32-byte chunks compared with the two levels give
// its plane words. The codewords' masks (a 1 MiB table read at random) are
// prefetched 8 codewords ahead.
//
// Large batches (more than linear()'s fused limit) dequantize a block to f32
// (sub1_dequantize_block) and run a GEMM.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "io/cpu_isa.h"
#include "quant/sub1.h"

namespace moec {

// A block's bit planes as the kernels read them (layout above), kept to be
// replayed: generation multiplies the same experts token after token, and a
// replay skips the decoding (model/sub1_plane_cache.h).
struct Sub1BlockPlanes {
  std::vector<uint32_t> bits;  // [words][2][16]
  bool ready = false;          // holds the block
  uint64_t bytes() const;
};

// Plane words per row of a matrix with `cols` columns.
constexpr int64_t sub1_plane_words(int64_t cols) { return (cols + 31) / 32; }

// Products of up to this many tokens use the lookup tables, whose result for
// a token does not depend on the batch; larger ones (prefill, eval) sum the
// activations at each row's nonzero positions, read off the planes, with
// tokens in 8 (AVX2) or 16 (AVX-512) vector lanes: one add per nonzero for
// that many tokens, where the tables cost two lookups per 64 weights and
// token (Mixtral shape, 32 tokens: 2–4× faster than the tables or a GEMM).
// Those sums are bit-identical across ISAs too (eight partial sums, element
// i of a row's list into sum i mod 8) but not to the tables' sums.
constexpr int64_t kSub1TableMaxTokens = 16;

// One product's activations as the kernels read them, prepared once per
// product and shared by the calls that split its rows (each call would
// otherwise build them again): up to kSub1TableMaxTokens tokens, the lookup
// tables [tokens][8 · words][16] floats (AVX2, one token: each group's 16
// floats byte-sliced, [4 bytes][16 entries]; AVX2, 2+ tokens: [token groups of
// lanes()][8 · words][16][group_lanes(g)], lane_group(g)); more, x transposed to
// [token groups][cols + 1][lanes] (portable: [tokens][cols + 1]), column
// `cols` zero (the lists' padding reads it).
class Sub1Activations {
 public:
  Sub1Activations() = default;
  Sub1Activations(const Sub1Activations&) = delete;
  Sub1Activations& operator=(const Sub1Activations&) = delete;
  void prepare(const float* x, int64_t x_stride, int64_t tokens, int64_t cols, Isa isa = active_isa());
  bool fits(int64_t cols, int64_t tokens, Isa isa) const { return cols_ == cols && tokens_ == tokens && isa_ == isa; }
  bool tables() const { return tokens_ <= kSub1TableMaxTokens; }
  // 64-byte aligned; AVX2 (one token): byte-sliced, as above.
  const float* token_tables(int64_t t) const { return buffer_.get() + t * per_token_; }
  const float* lane_group(int64_t g) const { return buffer_.get() + g * per_group_; }     // lanes() tokens
  int64_t tokens() const { return tokens_; }
  int lanes() const { return lanes_; }
  // Lanes of token group g's tables: lanes(), but 4 for a last group of ≤ 4
  // tokens (AVX2 tables; it starts at token g · lanes() all the same).
  int group_lanes(int64_t g) const { return (g + 1) * lanes_ >= tokens_ ? last_lanes_ : lanes_; }

 private:
  float* allocate(size_t floats);
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> buffer_;
  size_t capacity_ = 0;  // floats
  int64_t cols_ = -1, tokens_ = 0, per_token_ = 0, per_group_ = 0;
  int lanes_ = 1, last_lanes_ = 1;
  Isa isa_ = Isa::Portable;
};

// y[t, r] = Σ_c W[r, c] · x[t, c] for t < tokens and the rows of blocks
// [block0, block0 + n_blocks). With `planes` (one per block), blocks whose
// planes are ready are replayed from them and the others recorded there;
// the results are the same bits either way. `prepared`: x as prepared for
// this product (else prepared here).
void sub1_linear_blocks(const Sub1View& w, int64_t block0, int64_t n_blocks, const float* x, int64_t x_stride,
                        int64_t tokens, float* y, int64_t y_stride, Isa isa = active_isa(),
                        Sub1BlockPlanes* planes = nullptr, const Sub1Activations* prepared = nullptr);

// Rows of block b as f32 [rows_in_block(b), cols] (for large batches, which
// multiply a decoded block with a GEMM).
void sub1_dequantize_block(const Sub1View& w, int64_t b, float* out, Isa isa = active_isa());

}  // namespace moec
