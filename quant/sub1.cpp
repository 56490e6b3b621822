#include "quant/sub1.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "io/error.h"

namespace moec {

Sub1View Sub1Matrix::view() const {
  return {rows, cols, words.data(), int64_t(words.size()), blocks.data(), levels.data(), level_scale,
          shared_dictionary(counts).codebook()};
}

uint64_t Sub1Matrix::bytes() const {
  return 2 * words.size() + 4 * blocks.size() + levels.size() + sizeof(counts) + sizeof(level_scale);
}

uint8_t sub1_level_code(float magnitude, float level_scale) {
  if (!(magnitude > 0.0f) || !(level_scale > 0.0f)) return 0;
  const double steps = 255.0 + 16.0 * std::log2(double(magnitude) / double(level_scale));
  const int guess = int(std::clamp(std::floor(steps), 0.0, 255.0));
  uint8_t best = 0;
  float best_error = magnitude;
  for (int code = std::max(guess - 1, 1); code <= std::min(guess + 2, 255); ++code) {
    const float error = std::abs(sub1_level(unsigned(code), level_scale) - magnitude);
    if (error <= best_error) {
      best_error = error;
      best = uint8_t(code);
    }
  }
  return best;
}

std::vector<uint8_t> trits_of(const QuantizedMatrix& m) {
  if (!m.format.ternary()) fail("trits_of: format {} is not ternary", m.format.spec());
  std::vector<uint8_t> trits(static_cast<size_t>(m.rows * m.cols));
  const int64_t row_bytes = m.format.row_bytes(m.cols);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) trits[r * m.cols + c] = uint8_t(ternary_code(m.codes.data() + r * row_bytes, c));
  return trits;
}

Sub1Matrix encode_sub1(std::span<const uint8_t> trits, int64_t rows, int64_t cols, std::span<const uint8_t> levels,
                       float level_scale, const TunstallDictionary& dict) {
  if (int64_t(trits.size()) != rows * cols || int64_t(levels.size()) != 2 * rows)
    fail("encode_sub1: {} trits and {} level codes for a [{}, {}] matrix", trits.size(), levels.size(), rows, cols);
  Sub1Matrix m;
  m.rows = rows;
  m.cols = cols;
  m.level_scale = level_scale;
  m.counts = dict.counts();
  m.levels.assign(levels.begin(), levels.end());
  for (int64_t r0 = 0; r0 < rows; r0 += kSub1BlockRows) {
    m.blocks.push_back(uint32_t(m.words.size()));
    const int64_t n = std::min(kSub1BlockRows, rows - r0) * cols;
    dict.encode(trits.data() + r0 * cols, n, m.words);
    if (m.words.size() > UINT32_MAX) fail("sub1: {} codewords exceed the 32-bit block offsets", m.words.size());
  }
  m.blocks.push_back(uint32_t(m.words.size()));
  return m;
}

Sub1Matrix encode_sub1(const QuantizedMatrix& m, const TunstallDictionary& dict) {
  if (m.format.kind != GridKind::Sub1) fail("encode_sub1: format {} is not sub1", m.format.spec());
  std::vector<uint8_t> levels(m.scales.begin(), m.scales.end());  // the level codes, one byte each
  return encode_sub1(trits_of(m), m.rows, m.cols, levels, m.format.level_scale, dict);
}

void decode_sub1_block(const Sub1View& w, int64_t b, uint8_t* trits) {
  const uint32_t begin = w.blocks[b], end = w.blocks[b + 1];
  sub1_decode_stream(w.codebook, w.words + begin, int64_t(end) - int64_t(begin), w.rows_in_block(b) * w.cols, trits);
}

void dequantize_sub1_rows(const Sub1View& w, int64_t row0, int64_t n, float* out) {
  std::vector<uint8_t> trits(static_cast<size_t>(kSub1BlockRows * w.cols));
  for (int64_t b = row0 / kSub1BlockRows; b * kSub1BlockRows < row0 + n; ++b) {
    decode_sub1_block(w, b, trits.data());
    for (int64_t i = 0; i < w.rows_in_block(b); ++i) {
      const int64_t r = b * kSub1BlockRows + i;
      if (r < row0 || r >= row0 + n) continue;
      const float level[3] = {w.low(r), 0.0f, w.high(r)};
      for (int64_t c = 0; c < w.cols; ++c) out[(r - row0) * w.cols + c] = level[trits[i * w.cols + c]];
    }
  }
}

namespace {

// The dictionary is rebuilt from the stored trit counts, so counts that lie
// give another dictionary whose codewords cover other numbers of trits. Each
// block's codewords must cover exactly its rows · cols trits (the last one may
// run past the end, by less than its own length): a lying count or a damaged
// stream is refused here, before it can decode into other weights.
void check_block_coverage(const Sub1View& v, const TunstallDictionary& dict, const std::string& name) {
  const std::vector<uint8_t>& lengths = dict.lengths();
  for (int64_t b = 0; b < v.n_blocks(); ++b) {
    const uint64_t need = uint64_t(v.rows_in_block(b) * v.cols);
    uint64_t covered = 0, last = 0;
    for (uint32_t k = v.blocks[b]; k < v.blocks[b + 1]; ++k) {
      last = lengths[v.words[k]];
      covered += last;
    }
    if (covered < need || covered - last >= need)
      fail("tensor '{}': block {}'s codewords cover {} weights where its {} rows hold {} (trit_counts or codes do "
           "not match the encoding)", name, b, covered, v.rows_in_block(b), need);
  }
}

}  // namespace

Sub1View sub1_view(const TensorData& tensor) {
  const TensorInfo& info = tensor.info();
  if (info.encoding != "sub1") fail("tensor '{}': encoding '{}' is not sub1", info.name, info.encoding);
  if (info.format != "sub1") fail("tensor '{}': format '{}' does not belong to encoding 'sub1'", info.name, info.format);
  if (info.shape.size() != 2 || info.shape[0] <= 0 || info.shape[1] <= 0)
    fail("tensor '{}': a sub1 tensor must be a non-empty matrix", info.name);
  const int64_t rows = info.shape[0], cols = info.shape[1];
  auto part = [&](const char* name, uint64_t element, uint64_t count) {
    auto data = tensor.part(name);
    if (data.size() != element * count && count != 0)
      fail("tensor '{}': '{}' holds {} bytes but a [{}, {}] sub1 matrix needs {}", info.name, name, data.size(), rows,
           cols, element * count);
    return data;
  };
  Sub1View v;
  v.rows = rows;
  v.cols = cols;
  auto words = tensor.part("codes");
  if (words.size() % 2) fail("tensor '{}': 'codes' holds an odd number of bytes", info.name);
  v.words = reinterpret_cast<const uint16_t*>(words.data());
  v.n_words = int64_t(words.size() / 2);
  v.blocks = reinterpret_cast<const uint32_t*>(part("blocks", 4, uint64_t(v.n_blocks() + 1)).data());
  v.levels = reinterpret_cast<const uint8_t*>(part("levels", 1, uint64_t(2 * rows)).data());
  TritCounts counts;
  std::memcpy(counts.data(), part("trit_counts", 8, 3).data(), sizeof counts);
  std::memcpy(&v.level_scale, part("level_scale", 4, 1).data(), sizeof v.level_scale);
  if (!std::isfinite(v.level_scale) || v.level_scale < 0.0f)
    fail("tensor '{}': level_scale {} is not a finite non-negative number", info.name, v.level_scale);
  if (v.blocks[0] != 0 || int64_t(v.blocks[v.n_blocks()]) != v.n_words)
    fail("tensor '{}': block offsets must run from 0 to the {} codewords", info.name, v.n_words);
  for (int64_t b = 0; b < v.n_blocks(); ++b)
    if (v.blocks[b] > v.blocks[b + 1]) fail("tensor '{}': block offsets decrease at block {}", info.name, b);
  const TunstallDictionary& dict = [&]() -> const TunstallDictionary& {
    try {
      return shared_dictionary(counts);
    } catch (const Error& e) {
      fail("tensor '{}': {}", info.name, e.what());
    }
  }();
  const uint16_t largest = v.n_words ? *std::max_element(v.words, v.words + v.n_words) : 0;
  if (largest >= dict.size())
    fail("tensor '{}': codeword {} is outside its {}-word dictionary", info.name, largest, dict.size());
  check_block_coverage(v, dict, info.name);
  v.codebook = dict.codebook();
  return v;
}

std::vector<std::span<const std::byte>> describe_sub1(const Sub1Matrix& m, TensorInfo& info) {
  info.encoding = "sub1";
  info.format = "sub1";
  info.parts = {{"codes", DType::U16, {int64_t(m.words.size())}},
                {"blocks", DType::U32, {int64_t(m.blocks.size())}},
                {"levels", DType::U8, {m.rows, 2}},
                {"trit_counts", DType::U64, {3}},
                {"level_scale", DType::F32, {1}}};
  info.nbytes = m.bytes();
  return {std::as_bytes(std::span(m.words)), std::as_bytes(std::span(m.blocks)), std::as_bytes(std::span(m.levels)),
          std::as_bytes(std::span(m.counts)), std::as_bytes(std::span(&m.level_scale, 1))};
}

}  // namespace moec
