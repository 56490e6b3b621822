#include "bench/sub1_bench.h"

#include <map>

#include <fmt/format.h>

#include "io/checkpoint.h"
#include "io/error.h"
#include "quant/tensor_view.h"
#include "quant/sub1.h"

namespace moec {
namespace {

struct TernaryTensor {
  TensorKey key;
  int64_t rows, cols;
  std::vector<uint8_t> trits;
  uint64_t scale_bytes;
};

std::vector<TernaryTensor> ternary_tensors(const CheckpointSource& source) {
  std::vector<TernaryTensor> out;
  for (const TensorInfo& t : source.tensors()) {
    if (t.encoding == "sub1") {  // decode its trits
      TensorData data = source.read(t.key);
      const Sub1View v = sub1_view(data);
      TernaryTensor tt{t.key, v.rows, v.cols, std::vector<uint8_t>(size_t(v.rows * v.cols)), uint64_t(v.rows) * 4};
      for (int64_t b = 0; b < v.n_blocks(); ++b) decode_sub1_block(v, b, tt.trits.data() + b * kSub1BlockRows * v.cols);
      out.push_back(std::move(tt));
      continue;
    }
    if (t.encoding != "ternary") continue;
    TensorData data = source.read(t.key);
    QuantizedView v = quantized_view(data);
    TernaryTensor tt{t.key, v.rows, v.cols, std::vector<uint8_t>(size_t(v.rows * v.cols)),
                     uint64_t(v.rows * v.format.scales_per_group()) * 2};
    const int64_t row_bytes = v.format.row_bytes(v.cols);
    for (int64_t r = 0; r < v.rows; ++r)
      for (int64_t c = 0; c < v.cols; ++c) tt.trits[r * v.cols + c] = uint8_t(ternary_code(v.codes + r * row_bytes, c));
    out.push_back(std::move(tt));
  }
  if (out.empty())
    fail("{}: no ternary or sub1 expert tensors (quantize with --bits ternary first)", source.path().string());
  return out;
}

// Total code bits when tensors sharing a key of `group_of` share a dictionary.
template <typename GroupOf>
double coded_bits(const std::vector<TernaryTensor>& tensors, GroupOf group_of) {
  std::map<int64_t, TritCounts> counts;
  for (const auto& t : tensors) {
    TritCounts c = count_trits(t.trits);
    auto& g = counts[group_of(t)];
    for (int i = 0; i < 3; ++i) g[i] += c[i];
  }
  std::map<int64_t, TunstallDictionary> dicts;
  for (const auto& [g, c] : counts) dicts.emplace(g, TunstallDictionary(c));
  double bits = 8.0 * sizeof(TritCounts) * double(counts.size());
  for (const auto& t : tensors) {
    std::vector<uint8_t> no_levels(size_t(2 * t.rows), 0);
    Sub1Matrix m = encode_sub1(t.trits, t.rows, t.cols, no_levels, 0.0f, dicts.at(group_of(t)));
    bits += 16.0 * double(m.words.size()) + 32.0 * double(m.blocks.size());
  }
  return bits;
}

// QMoE's scheme: every row coded on its own, with a 32-bit offset and two
// bf16 levels per row.
double qmoe_row_coded_bits(const std::vector<TernaryTensor>& tensors, const TunstallDictionary& dict) {
  double bits = 0;
  std::vector<uint16_t> words;
  for (const auto& t : tensors)
    for (int64_t r = 0; r < t.rows; ++r) {
      words.clear();
      dict.encode(t.trits.data() + r * t.cols, t.cols, words);
      bits += 16.0 * double(words.size()) + 64.0;
    }
  return bits;
}

}  // namespace

nlohmann::ordered_json run_sub1_bench(const std::filesystem::path& path) {
  auto source = open_checkpoint(path);
  auto tensors = ternary_tensors(*source);
  double weights = 0, scale_bits = 0, zeros = 0;
  PairCounts pairs{};
  for (const auto& t : tensors) {
    weights += double(t.rows * t.cols);
    scale_bits += 8.0 * double(t.scale_bytes);
    PairCounts p = count_pairs(t.trits, t.rows, t.cols);
    for (int i = 0; i < 9; ++i) pairs[i] += p[i];
    zeros += double(count_trits(t.trits)[1]);
  }
  nlohmann::ordered_json j;
  j["model"] = path.string();
  j["tensors"] = tensors.size();
  j["weights"] = weights;
  j["zero_fraction"] = zeros / weights;
  j["pair_entropy_bits_per_weight"] = pair_entropy_bits_per_weight(pairs);
  j["qmoe_fixed_dictionary_bits_per_weight"] = qmoe_row_coded_bits(tensors, TunstallDictionary::qmoe_fixed()) / weights;
  j["scales_bits_per_weight"] = scale_bits / weights;  // the input's own levels
  double rows = 0;
  for (const auto& t : tensors) rows += double(t.rows);
  j["sub1_levels_bits_per_weight"] = 16.0 * rows / weights;  // two 8-bit level codes per row
  j["base3_packed_bits_per_weight"] = 1.6;
  const std::pair<const char*, std::function<int64_t(const TernaryTensor&)>> scopes[] = {
      {"model", [](const TernaryTensor&) { return int64_t(0); }},
      {"layer", [](const TernaryTensor& t) { return int64_t(t.key.layer); }},
      {"tensor", [](const TernaryTensor& t) { return int64_t(t.key.layer) * 1000000 + t.key.expert * 10 + int(t.key.role); }}};
  for (const auto& [name, group] : scopes) {
    const double bits = coded_bits(tensors, group);
    j["dictionary_per_" + std::string(name)] = {{"code_bits_per_weight", bits / weights},
                                                {"with_scales_bits_per_weight", (bits + scale_bits) / weights},
                                                {"with_sub1_levels_bits_per_weight", bits / weights + 16.0 * rows / weights}};
  }
  return j;
}

std::string format_sub1_bench(const nlohmann::ordered_json& j) {
  std::string out = fmt::format("sub1 code of {}: {} ternary tensors, {:.0f} weights, {:.1f}% zeros\n",
                                j["model"].get<std::string>(), j["tensors"].get<size_t>(), j["weights"].get<double>(),
                                100 * j["zero_fraction"].get<double>());
  out += fmt::format("  order-0 entropy of pair symbols   {:.3f} bits/weight\n",
                     j["pair_entropy_bits_per_weight"].get<double>());
  out += fmt::format("  per-row f16 levels                {:.3f} bits/weight\n", j["scales_bits_per_weight"].get<double>());
  out += fmt::format("  per-row 8-bit level codes (sub1)  {:.3f} bits/weight\n",
                     j["sub1_levels_bits_per_weight"].get<double>());
  out += fmt::format("  base-3 packing (ternary-qmoe)     1.600 bits/weight + f16 levels\n");
  out += fmt::format("  QMoE's fixed pair dictionary     {:.3f} bits/weight, rows coded apart, with its row overhead\n",
                     j["qmoe_fixed_dictionary_bits_per_weight"].get<double>());
  for (const char* scope : {"model", "layer", "tensor"}) {
    const auto& d = j[std::string("dictionary_per_") + scope];
    out += fmt::format("  sub1, dictionary per {:<7}      {:.3f} bits/weight; {:.3f} with f16 levels, {:.3f} with 8-bit\n",
                       scope, d["code_bits_per_weight"].get<double>(), d["with_scales_bits_per_weight"].get<double>(),
                       d["with_sub1_levels_bits_per_weight"].get<double>());
  }
  return out;
}

}  // namespace moec
