// Fused CPU kernels over sub1 matrices (quant/sub1.h): decode a block of 16
// rows and multiply it with 1..N activation rows while the block's codes are
// in cache, never materializing more than one row of trits.
//
// Two designs, chosen per matrix:
//
// Sparse (the default): at p(0) ≈ 0.7–0.9 a 16-bit codeword stands for
// ~10–30 trits of which only 1–4 are nonzero. A second per-codeword table
// (built from the dictionary once, 16 bytes per codeword) lists the
// positions of those nonzeros; decoding a row appends each codeword's
// positions plus its start to two lists (low level, high level) with one
// 16-byte load/add/store per list, and the product sums the activations
// the lists point at: Σ_low x and Σ_high x per row and token, then
// y = low · Σ_low + high · Σ_high. No multiplications per weight and no work
// for zeros, so a token costs a few loads per nonzero; several tokens share
// each position (activations transposed to [cols][tokens], one vector add
// per nonzero for 8 (AVX2) or 16 (AVX-512) tokens).
//   Entry layout (16 bytes): u8 length, u8 low count | high count << 4,
//   u8 low positions [7], u8 high positions [7]. A dictionary with a
//   codeword of more than 7 trits of one level has no sparse table (dense
//   design instead); so does a matrix wider than 65,000 columns (positions
//   within a row are u16).
//   The sums use eight partial sums per list, element i into sum i mod 8,
//   added pairwise; every ISA and every batch size does the same float
//   operations per token, so results are bit-identical across ISAs, thread
//   counts, batch groupings and list-cache replays.
//
// Dense (fallback, and the GEMM path's dequantization): the block's trits
// are expanded to bytes (AVX-512: masked byte blends; AVX2: shuffle + compare
// of the codeword's bit masks; portable: the reference decoder), then each
// row's trits index a 3-entry level table (vpermps) and are multiplied with
// the activations. The decode buffer has 64 bytes of slack: a whole 64-trit
// codeword is stored at a time and the next one overwrites the excess.
//
// ISAs: portable C++, AVX2 (+FMA, BMI) and AVX-512 (F+BW), chosen by
// active_isa() (io/cpu_isa.h); tests run every one the CPU supports against
// the scalar reference decoder followed by a dense product.
#pragma once
#include <cstdint>
#include <vector>

#include "io/cpu_isa.h"
#include "quant/sub1.h"

namespace moec {

// The kernel design a matrix uses: "sparse" or "dense".
const char* sub1_design(const Sub1View& w);
bool sub1_uses_sparse_design(const Sub1View& w);

// A block's position lists as the sparse design decodes them, kept to be
// replayed: generation multiplies the same experts token after token, and a
// replay skips the decoding (model/sub1_list_cache.h). Per row: its low
// positions, then its high ones, each list padded to a multiple of 8 with
// position `cols` (read as a zero activation); ends[2i], ends[2i+1] end row
// i's two lists.
struct Sub1BlockLists {
  std::vector<uint16_t> positions;
  std::vector<uint32_t> ends;
  std::vector<float> levels;  // per row: low, high (decoded from their codes)
  bool ready = false;  // holds the block
  uint64_t bytes() const;
};

// One product's activations as the sparse design reads them: several
// tokens transposed into 8 (AVX2) or 16 (AVX-512) token lanes, or, for a
// product with lists, each row copied with a zero after it (the lists'
// padding position); otherwise x as given. Prepared once per product and
// shared by the calls that split its rows (a tile of 64 rows would
// otherwise transpose all of x again).
class Sub1Activations {
 public:
  void prepare(const Sub1View& w, const float* x, int64_t x_stride, int64_t tokens, bool for_lists,
               Isa isa = active_isa());
  // Prepared for a product of this shape, these lists and this ISA.
  bool fits(const Sub1View& w, int64_t tokens, bool for_lists, Isa isa) const;
  const float* x() const { return x_; }
  int64_t x_stride() const { return x_stride_; }
  int64_t tokens() const { return tokens_; }
  int lanes() const { return lanes_; }

 private:
  std::vector<float> buffer_;
  const float* x_ = nullptr;
  int64_t x_stride_ = 0, tokens_ = 0, cols_ = -1;
  int lanes_ = 1;
  bool for_lists_ = false;
};

// y[t, r] = Σ_c W[r, c] · x[t, c] for t < tokens and the rows of blocks
// [block0, block0 + n_blocks). With `lists` (one per block, sparse design
// only: see sub1_design), blocks whose lists are ready are replayed from
// them and the others recorded; the results are the same bits either way.
// `prepared`: x as prepared for this product (else prepared here).
void sub1_linear_blocks(const Sub1View& w, int64_t block0, int64_t n_blocks, const float* x, int64_t x_stride,
                        int64_t tokens, float* y, int64_t y_stride, Isa isa = active_isa(),
                        Sub1BlockLists* lists = nullptr, const Sub1Activations* prepared = nullptr);

// Rows of block b as f32 [rows_in_block(b), cols] (for large batches, which
// multiply a decoded block with a GEMM).
void sub1_dequantize_block(const Sub1View& w, int64_t b, float* out, Isa isa = active_isa());

// The sparse table of a dictionary (see above): bytes to allocate for
// `size` codewords, and the builder; false when some codeword has too many
// nonzeros of one level for the layout (the table is then unused).
uint64_t sub1_sparse_table_bytes(uint32_t size);
bool sub1_build_sparse_table(const Sub1Codebook& codebook, uint8_t* table);

}  // namespace moec
