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
// token, built once per product (Sub1Tables) and shared by its row tiles.
//
// Product. A row's sum over a plane is Σ_g T[g][nibble g of the plane],
// accumulated in four partial sums (group g into sum g mod 4) added as
// (s0 + s1) + (s2 + s3); y = low · S_low + high · S_high. Lanes are rows:
// AVX-512 looks a nibble up for 16 rows with one vpermps (its 16-entry table
// is one register), AVX2 for 8 rows with two vpermps over the table's halves
// and a blend on the nibble's high bit, portable C++ one row at a time.
// Per 64 weights and token that is 2 lookups and 2 adds on AVX-512 (a bf16
// product: 4 widenings and 4 FMAs), with no work that grows with the
// nonzeros and no limit on the dictionary or the width.
//   Every path does the same float additions in the same order for each
// (row, token), so results are bit-identical across ISAs, thread counts,
// batch sizes and cache replays (tested), which is what lets serve/ batch
// sequences without changing any sequence's output.
//
// Decoding (per ISA): codewords are expanded to trit bytes a row at a time
// (AVX-512: masked byte blends; AVX2: shuffle + compare of the codeword's
// bit masks; portable: the reference decoder), and each 32 bytes compared
// with the two levels give a row's two plane words. The row buffer has 64
// bytes of slack: a whole 64-trit codeword is stored at a time and the spill
// past the row starts the next one.
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

// One product's lookup tables (layout above): [tokens][8 · words][16]
// floats. Prepared once per product and shared by the calls that split its
// rows (each call would otherwise build all of them again).
class Sub1Tables {
 public:
  Sub1Tables() = default;
  Sub1Tables(const Sub1Tables&) = delete;
  Sub1Tables& operator=(const Sub1Tables&) = delete;
  void prepare(const float* x, int64_t x_stride, int64_t tokens, int64_t cols, Isa isa = active_isa());
  bool fits(int64_t cols, int64_t tokens) const { return cols_ == cols && tokens_ == tokens; }
  const float* token(int64_t t) const { return buffer_.get() + t * per_token_; }  // 64-byte aligned
  int64_t tokens() const { return tokens_; }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> buffer_;
  size_t capacity_ = 0;  // floats
  int64_t cols_ = -1, tokens_ = 0, per_token_ = 0;
};

// y[t, r] = Σ_c W[r, c] · x[t, c] for t < tokens and the rows of blocks
// [block0, block0 + n_blocks). With `planes` (one per block), blocks whose
// planes are ready are replayed from them and the others recorded there;
// the results are the same bits either way. `prepared`: the tables of x for
// this product (else built here).
void sub1_linear_blocks(const Sub1View& w, int64_t block0, int64_t n_blocks, const float* x, int64_t x_stride,
                        int64_t tokens, float* y, int64_t y_stride, Isa isa = active_isa(),
                        Sub1BlockPlanes* planes = nullptr, const Sub1Tables* prepared = nullptr);

// Rows of block b as f32 [rows_in_block(b), cols] (for large batches, which
// multiply a decoded block with a GEMM).
void sub1_dequantize_block(const Sub1View& w, int64_t b, float* out, Isa isa = active_isa());

}  // namespace moec
