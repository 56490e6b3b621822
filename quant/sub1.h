// The `sub1` encoding of a ternary weight matrix: below one bit per weight.
//
// Grid: QMoE's ternary grid, levels {low, 0, high} per row with
// low = min(row, 0) and high = max(row, 0), each level's magnitude stored as
// an 8-bit log code relative to the tensor's largest |weight|
// (sub1_level(), quant/sub1_code.h): 2 bytes per row instead of 4.
// Trits: coded in blocks of 16 rows with a Tunstall dictionary
// (quant/tunstall.h) rebuilt from three trit counts; the offset of every
// block's first codeword lets blocks decode independently.
//
// Stored arrays (container parts, docs/container.md §4.5):
//   codes        u16 [n_words]        the codewords, block after block
//   blocks       u32 [n_blocks + 1]   first codeword of each block, then n_words
//   levels       u8  [rows, 2]        codes of |low| and high
//   trit_counts  u64 [3]              the dictionary's counts of trits 0, 1, 2
//   level_scale  f32 [1]              the tensor's largest |weight|
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "io/checkpoint.h"
#include "quant/quantized_matrix.h"
#include "quant/sub1_code.h"
#include "quant/tunstall.h"

namespace moec {

// A non-owning view of a sub1 matrix, ready to decode.
struct Sub1View {
  int64_t rows = 0, cols = 0;
  const uint16_t* words = nullptr;
  int64_t n_words = 0;
  const uint32_t* blocks = nullptr;
  const uint8_t* levels = nullptr;
  float level_scale = 0.0f;
  Sub1Codebook codebook;

  int64_t n_blocks() const { return (rows + kSub1BlockRows - 1) / kSub1BlockRows; }
  int64_t rows_in_block(int64_t b) const {
    return rows - b * kSub1BlockRows < kSub1BlockRows ? rows - b * kSub1BlockRows : kSub1BlockRows;
  }
  float low(int64_t r) const { return -sub1_level(levels[2 * r], level_scale); }
  float high(int64_t r) const { return sub1_level(levels[2 * r + 1], level_scale); }
};

// A sub1 matrix in memory (what the quantizer writes).
struct Sub1Matrix {
  int64_t rows = 0, cols = 0;
  float level_scale = 0.0f;
  TritCounts counts{};
  std::vector<uint16_t> words;
  std::vector<uint32_t> blocks;
  std::vector<uint8_t> levels;

  Sub1View view() const;  // decodes through shared_dictionary(counts)
  uint64_t bytes() const;  // every stored byte, counts and scale included
  double bits_per_weight() const { return 8.0 * double(bytes()) / double(rows * cols); }
};

// The nearest level code of a magnitude (ties to the larger code).
uint8_t sub1_level_code(float magnitude, float level_scale);

// The trits of a ternary matrix (any ternary grid), row-major.
std::vector<uint8_t> trits_of(const QuantizedMatrix& m);
// Codes trits [rows, cols] with level codes [rows, 2].
Sub1Matrix encode_sub1(std::span<const uint8_t> trits, int64_t rows, int64_t cols, std::span<const uint8_t> levels,
                       float level_scale, const TunstallDictionary& dict);
// Codes a matrix quantized on the sub1 grid (format "sub1").
Sub1Matrix encode_sub1(const QuantizedMatrix& m, const TunstallDictionary& dict);

// Reference decoding (scalar, the definition the kernels are tested against).
// The trits of block b: rows_in_block(b) · cols of them.
void decode_sub1_block(const Sub1View& w, int64_t b, uint8_t* trits);
// Rows [row0, row0 + n) as f32 [n, cols].
void dequantize_sub1_rows(const Sub1View& w, int64_t row0, int64_t n, float* out);

// Checks a container tensor of encoding "sub1" and views it; throws
// moec::Error naming the tensor when an array's size or content is wrong.
Sub1View sub1_view(const TensorData& tensor);
// The container parts of m; sets info's encoding, format, parts and nbytes.
std::vector<std::span<const std::byte>> describe_sub1(const Sub1Matrix& m, TensorInfo& info);

}  // namespace moec
