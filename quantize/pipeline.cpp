#include "quantize/pipeline.h"

#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "io/checkpoint.h"
#include "io/checksum.h"
#include "io/container.h"
#include "io/error.h"
#include "io/process_stats.h"
#include "io/text_file.h"
#include "model/model.h"
#include "model/ops.h"
#include "model/thread_pool.h"
#include "model/tokenizer.h"
#include "quant/sub1.h"
#include "quant/tensor_view.h"
#include "model/calibration.h"

namespace moec {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
constexpr int64_t kWindowBatch = 8;  // calibration windows run through attention together

RowMatrix to_f32(const CheckpointSource& source, const TensorKey& key) {
  TensorData data = source.read(key);
  const TensorInfo& info = data.info();
  RowMatrix m(info.shape[0], info.shape[1]);
  convert_to_f32(*info.dense_dtype(), data.bytes().data(), m.data(), size_t(m.size()));
  return m;
}

RowMatrix dequantized(const QuantizedMatrix& q) {
  RowMatrix m(q.rows, q.cols);
  dequantize_rows(q.view(), 0, q.rows, m.data());
  return m;
}

// silu(x·W1ᵀ) ⊙ x·W3ᵀ: the input of w2.
RowMatrix expert_hidden(const RowMatrix& x, const RowMatrix& w1, const RowMatrix& w3) {
  RowMatrix gate = x * w1.transpose();
  RowMatrix up = x * w3.transpose();
  silu_mul(gate.data(), up.data(), gate.size());
  return gate;
}

struct ExpertResult {
  QuantizedMatrix w1, w2, w3;
  std::vector<std::string> fallbacks;
};

// An expert's routed tokens, normalized a chunk at a time from the residual
// stream, so neither the layer's normalized inputs nor any [tokens,
// intermediate] matrix is ever held whole.
class ExpertTokens {
 public:
  static constexpr int64_t kChunk = 1024;
  ExpertTokens(const std::vector<float>& x, const std::vector<int64_t>& rows, const std::vector<float>& norm,
               float eps)
      : x_(x), rows_(rows), norm_(norm), eps_(eps) {}
  int64_t count() const { return int64_t(rows_.size()); }
  // Rows [begin, begin + n) of the expert's inputs.
  RowMatrix chunk(int64_t begin, int64_t n) const {
    const int64_t h = int64_t(norm_.size());
    RowMatrix x(n, h);
    for (int64_t k = 0; k < n; ++k) rms_norm(&x_[rows_[begin + k] * h], 1, h, norm_.data(), eps_, x.row(k).data());
    return x;
  }
  template <typename Fn>
  void for_each_chunk(Fn&& fn) const {
    for (int64_t b = 0; b < count(); b += kChunk) {
      const int64_t n = std::min(kChunk, count() - b);
      fn(b, chunk(b, n));
    }
  }

 private:
  const std::vector<float>& x_;
  const std::vector<int64_t>& rows_;
  const std::vector<float>& norm_;
  float eps_;
};

QuantizedMatrix quantize_matrix(const RowMatrix& w, const HessianAccumulator& h, const QuantizeOptions& o,
                                std::vector<std::string>& fallbacks, const std::string& what) {
  QuantFormat format = o.format;
  if (format.kind == GridKind::Sub1) format.level_scale = w.cwiseAbs().maxCoeff();  // the tensor's level reference
  if (!o.gptq) return quantize_rtn(w.data(), w.rows(), w.cols(), format);
  QuantizeOutcome out = quantize_gptq(w.data(), w.rows(), w.cols(), h, format, o.gptq_options);
  if (out.used_rtn) fallbacks.push_back(fmt::format("{}: {} (RTN used)", what, out.note));
  return std::move(out.matrix);
}

// The three matrices of one SwiGLU MLP: an expert's w1/w2/w3, or a dense
// model's gate/down/up (quantized the same way: the dense MLP is one expert
// that every token reaches).
struct MlpKeys {
  TensorKey gate, down, up;
};
// In an MoE layer, expert index num_experts stands for the shared expert.
MlpKeys mlp_keys(const ModelConfig& c, int layer, int expert) {
  if (!c.moe_layer(layer))
    return {{TensorRole::MlpGate, layer, -1}, {TensorRole::MlpDown, layer, -1}, {TensorRole::MlpUp, layer, -1}};
  if (expert == c.num_experts)
    return {{TensorRole::SharedW1, layer, -1}, {TensorRole::SharedW2, layer, -1}, {TensorRole::SharedW3, layer, -1}};
  return {{TensorRole::ExpertW1, layer, expert}, {TensorRole::ExpertW2, layer, expert}, {TensorRole::ExpertW3, layer, expert}};
}

ExpertResult quantize_expert(const CheckpointSource& source, const MlpKeys& keys, const ExpertTokens& tokens,
                             const QuantizeOptions& o) {
  ExpertResult r;
  const std::string name = logical_name(keys.gate).substr(0, logical_name(keys.gate).rfind('.'));
  RowMatrix w1 = to_f32(source, keys.gate);
  RowMatrix w2 = to_f32(source, keys.down);
  RowMatrix w3 = to_f32(source, keys.up);
  HessianAccumulator block_input(w1.cols()), down_input(w2.cols());
  if (o.gptq) tokens.for_each_chunk([&](int64_t, const RowMatrix& x) { block_input.add(x.data(), x.rows(), x.cols()); });
  r.w1 = quantize_matrix(w1, block_input, o, r.fallbacks, name + ".w1");
  r.w3 = quantize_matrix(w3, block_input, o, r.fallbacks, name + ".w3");
  const RowMatrix q1 = dequantized(r.w1), q3 = dequantized(r.w3);
  if (o.gptq)
    tokens.for_each_chunk([&](int64_t, const RowMatrix& x) {
      RowMatrix hidden = expert_hidden(x, q1, q3);
      down_input.add(hidden.data(), hidden.rows(), hidden.cols());
    });
  r.w2 = quantize_matrix(w2, down_input, o, r.fallbacks, name + ".w2");
  return r;
}

// The sub1 dictionary of every layer: built from the trit counts of the
// first layer's experts. One dictionary per model keeps one 1 MiB decoding
// table resident instead of one per layer, and layers' statistics differ
// little (`moec bench sub1` measures per-model, per-layer and per-tensor
// dictionaries: the difference is under 1%).
TritCounts layer_trit_counts(const std::vector<ExpertResult>& experts) {
  TritCounts counts{};
  for (const auto& e : experts)
    for (const QuantizedMatrix* m : {&e.w1, &e.w2, &e.w3}) {
      TritCounts c = count_trits(trits_of(*m));
      for (int i = 0; i < 3; ++i) counts[i] += c[i];
    }
  return counts;
}

double zero_share(const QuantizedMatrix& m) {
  uint64_t zeros = 0;
  const int64_t row_bytes = m.format.row_bytes(m.cols);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) zeros += ternary_code(m.codes.data() + r * row_bytes, c) == 1;
  return double(zeros);
}

class LayerQuantizer {
 public:
  LayerQuantizer(const CheckpointSource& source, Model& model, const QuantizeOptions& o, ContainerWriter& writer,
                 QuantizeReport& report)
      : source_(source), model_(model), o_(o), writer_(writer), report_(report),
        arch_(*find_architecture(source.config().model_type)) {}

  void write_dense(const TensorKey& key) {
    TensorData data = source_.read(key);
    writer_.write_dense(data.info(), hf_name(arch_, key), data.bytes());
  }

  // Runs layer `l` on the calibration stream x (in place) and writes it.
  void run(int64_t l, std::vector<float>& x, int64_t windows) {
    Stopwatch clock;
    const ModelConfig& c = source_.config();
    const bool sparse = c.moe_layer(l);
    const bool shared = sparse && c.shared_expert_size > 0 && !o_.keep_shared;
    // The MLPs quantized here: the routed experts (then the shared one), or
    // a dense layer's MLP.
    const int64_t routed = sparse ? c.num_experts : 1, experts = routed + (shared ? 1 : 0);
    const int64_t h = c.hidden_size, batch_tokens = kWindowBatch * o_.ctx;
    const float eps = float(c.rms_norm_eps);
    for (int64_t w0 = 0; w0 < windows; w0 += kWindowBatch) {
      const int64_t batch = std::min(kWindowBatch, windows - w0);
      KvCache cache(1, batch, o_.ctx, c.num_kv_heads * c.head_dim);
      model_.attention_layer(l, &x[w0 * o_.ctx * h], o_.ctx, cache, 0);
    }
    // Which tokens each expert gets (a dense MLP: all of them).
    const int64_t n = windows * o_.ctx;
    std::vector<std::vector<int64_t>> rows(static_cast<size_t>(experts));
    std::vector<float> normed, logits;
    Routing routing;
    if (!sparse || shared)  // a dense MLP or a shared expert: every token
      for (int64_t t = 0; t < n; ++t) rows[size_t(experts - 1)].push_back(t);
    for (int64_t t0 = 0; sparse && t0 < n; t0 += batch_tokens) {
      const int64_t m = std::min(batch_tokens, n - t0);
      normed.resize(size_t(m * h));
      rms_norm(&x[t0 * h], m, h, model_.moe_norm(l).data(), eps, normed.data());
      route_tokens(model_.pool(), model_.moe_weights(l).router, c.top_k, normed.data(), m, routing, logits,
                   c.norm_topk_prob);
      for (int64_t t = 0; t < m; ++t)
        for (int64_t j = 0; j < c.top_k; ++j) rows[routing.chosen[t * c.top_k + j]].push_back(t0 + t);
    }

    LayerReport layer{l, 0, {}, {}, 0};
    std::vector<ExpertResult> results(static_cast<size_t>(experts));
    model_.pool().parallel_for(size_t(experts), [&](size_t e, int) {
      ExpertTokens tokens(x, rows[e], model_.moe_norm(l), eps);
      results[e] = quantize_expert(source_, mlp_keys(c, int(l), int(e)), tokens, o_);
      if (o_.progress) o_.progress(l, int64_t(e), experts);
    });
    for (int64_t e = 0; e < experts; ++e) {
      if (e < routed) layer.tokens_per_expert.push_back(int64_t(rows[e].size()));
      for (auto& f : results[e].fallbacks) layer.fallbacks.push_back(f);
    }
    layer.relative_error = propagate(l, x, results);
    if (o_.format.kind == GridKind::Sub1 && !dictionary_) dictionary_ = &shared_dictionary(layer_trit_counts(results));
    std::set<TensorKey> quantized;
    for (int64_t e = 0; e < experts; ++e) {
      write_expert(l, e, results[e]);
      const MlpKeys keys = mlp_keys(c, int(l), int(e));
      quantized.insert({keys.gate, keys.down, keys.up});
    }
    // Everything else of the layer (attention, norms, biases, router, the
    // shared expert's gate, a kept shared expert) keeps its stored precision.
    for (const TensorKey& key : expected_tensors(c))
      if (key.layer == int(l) && !quantized.contains(key)) write_dense(key);
    layer.seconds = clock.seconds();
    report_.layers.push_back(std::move(layer));
  }

 private:
  // Runs the layer's MoE block over the calibration stream twice per batch of
  // windows, with the original and the quantized experts (the runtime's own
  // kernels), adds the quantized output to x, and returns the relative error
  // ‖MoE(x) − MoE_Q(x)‖ / ‖MoE(x)‖.
  double propagate(int64_t l, std::vector<float>& x, const std::vector<ExpertResult>& results) {
    const ModelConfig& c = source_.config();
    const int64_t h = c.hidden_size, n = int64_t(x.size()) / h, batch_tokens = kWindowBatch * o_.ctx;
    // A dense MLP runs as a block of one expert under a one-row router
    // (top-1 of one: weight exactly 1).
    std::vector<TensorData> held;
    const std::vector<float> one_row(size_t(h), 0.0f);
    MoeWeights original = model_.moe_weights(l);
    const int64_t top_k = c.moe_layer(l) ? c.top_k : 1;
    if (!c.moe_layer(l)) {
      original.router = f32_view(one_row.data(), 1, h);
      const MlpKeys keys = mlp_keys(c, int(l), 0);
      for (const TensorKey& key : {keys.gate, keys.down, keys.up}) held.push_back(source_.read(key));
      original.experts = {{weight_view(held[0]), weight_view(held[1]), weight_view(held[2])}};
    }
    MoeWeights quantized = original;
    for (size_t e = 0; e < results.size(); ++e) {
      auto view = [](const QuantizedMatrix& m) { return quantized_weights(m.view()); };
      const ExpertWeights weights{view(results[e].w1), view(results[e].w2), view(results[e].w3)};
      if (e < quantized.experts.size())
        quantized.experts[e] = weights;
      else
        quantized.shared = weights;  // the shared expert, last
    }
    MoeBlock block;
    std::vector<float> normed, reference, output;
    double diff = 0, norm = 0;
    for (int64_t t0 = 0; t0 < n; t0 += batch_tokens) {
      const int64_t m = std::min(batch_tokens, n - t0);
      normed.resize(size_t(m * h));
      rms_norm(&x[t0 * h], m, h, model_.moe_norm(l).data(), float(c.rms_norm_eps), normed.data());
      reference.assign(size_t(m * h), 0.0f);
      output.assign(size_t(m * h), 0.0f);
      block.forward(model_.pool(), original, top_k, normed.data(), m, reference.data(), nullptr);
      block.forward(model_.pool(), quantized, top_k, normed.data(), m, output.data(), nullptr);
      for (int64_t i = 0; i < m * h; ++i) {
        diff += double(reference[i] - output[i]) * double(reference[i] - output[i]);
        norm += double(reference[i]) * double(reference[i]);
        x[t0 * h + i] += output[i];  // the next layer sees the quantized layer's output
      }
    }
    return std::sqrt(diff / norm);
  }

  void write_expert(int64_t l, int64_t e, const ExpertResult& r) {
    const MlpKeys keys = mlp_keys(source_.config(), int(l), int(e));
    const std::pair<TensorKey, const QuantizedMatrix*> mats[] = {{keys.gate, &r.w1}, {keys.down, &r.w2}, {keys.up, &r.w3}};
    for (const auto& [key, m] : mats) {
      TensorInfo info = source_.info(key);
      if (m->format.kind == GridKind::Sub1) {
        const Sub1Matrix coded = encode_sub1(*m, *dictionary_);
        writer_.write_encoded(info, hf_name(arch_, key), describe_sub1(coded, info));
        report_.expert_bytes += coded.bytes();
      } else {
        writer_.write_encoded(info, hf_name(arch_, key), describe_quantized(*m, info));
        report_.expert_bytes += m->bytes();
      }
      report_.expert_params += uint64_t(m->rows * m->cols);
      if (m->format.ternary()) report_.zero_fraction += zero_share(*m);
    }
  }

  const CheckpointSource& source_;
  Model& model_;
  const QuantizeOptions& o_;
  ContainerWriter& writer_;
  QuantizeReport& report_;
  const ArchitectureNames& arch_;
  const TunstallDictionary* dictionary_ = nullptr;  // sub1: from the first layer
};

}  // namespace

QuantizeReport quantize_model(const CheckpointSource& source, const std::filesystem::path& out,
                              const QuantizeOptions& o, ThreadPool& pool) {
  Stopwatch clock;
  for (const TensorInfo& t : source.tensors())
    if (t.encoded()) fail("{}: tensor '{}' is already quantized; quantize from a dense checkpoint", source.path().string(), t.name);
  Tokenizer tokenizer = Tokenizer::from_checkpoint(source);
  const std::string calib_text = read_text_file(o.calib);
  std::vector<int32_t> calib = calibration_windows(tokenizer.encode(calib_text), o.calib_windows, o.ctx, o.seed);
  if (o.ctx > source.config().max_position_embeddings)
    fail("--ctx {} exceeds the model's max_position_embeddings {}", o.ctx, source.config().max_position_embeddings);
  const int64_t windows = int64_t(calib.size()) / o.ctx;

  QuantizeReport report;
  report.format = o.format.spec();
  report.method = o.gptq ? "gptq" : "rtn";
  report.calib_tokens = int64_t(calib.size());
  Provenance provenance{o.command_line, std::filesystem::absolute(source.path()).string(),
                        std::string(source.format()), describe_files(source.files()), nullptr};
  provenance.quantization = {{"format", report.format},
                             {"method", report.method},
                             {"damp", o.gptq_options.damp},
                             {"block", o.gptq_options.block},
                             {"act_order", o.gptq_options.act_order},
                             {"shared_experts", o.keep_shared ? "kept" : "quantized"},
                             {"code", o.format.kind == GridKind::Sub1 ? "sub1: Tunstall dictionary from layer 0's trit counts"
                                                                      : "packed"},
                             {"calibration", {{"file", std::filesystem::absolute(o.calib).string()},
                                              {"crc32", fmt::format("{:08x}", crc32_bytes(calib_text))},
                                              {"windows", windows},
                                              {"ctx", o.ctx},
                                              {"seed", o.seed}}}};
  ContainerWriter writer(out, o.overwrite, source.config_json(), provenance);
  writer.write_tokenizers(source.tokenizer_files());

  Model model(source, pool);
  LayerQuantizer layers(source, model, o, writer, report);
  layers.write_dense({TensorRole::Embed});
  std::vector<float> x;
  model.embed(calib, x);
  for (int64_t l = 0; l < source.config().num_layers; ++l) layers.run(l, x, windows);
  layers.write_dense({TensorRole::FinalNorm});
  if (!source.config().tie_word_embeddings) layers.write_dense({TensorRole::LmHead});
  writer.commit();

  report.zero_fraction = o.format.ternary() ? report.zero_fraction / double(report.expert_params) : 0.0;
  for (const TensorInfo& t : source.tensors()) report.total_params += t.numel();
  report.file_bytes = std::filesystem::file_size(out);
  report.seconds = clock.seconds();
  report.peak_rss = peak_rss_bytes();
  return report;
}

nlohmann::ordered_json to_json(const QuantizeReport& r) {
  nlohmann::ordered_json j{{"format", r.format},
                           {"method", r.method},
                           {"calibration_tokens", r.calib_tokens},
                           {"expert_bits_per_weight", r.expert_bits_per_weight()},
                           {"file_bits_per_weight", r.file_bits_per_weight()},
                           {"expert_bytes", r.expert_bytes},
                           {"file_bytes", r.file_bytes},
                           {"seconds", r.seconds},
                           {"peak_rss_bytes", r.peak_rss}};
  if (r.zero_fraction > 0) j["zero_fraction"] = r.zero_fraction;
  for (const auto& l : r.layers)
    j["layers"].push_back({{"layer", l.layer},
                           {"relative_output_error", l.relative_error},
                           {"tokens_per_expert", l.tokens_per_expert},
                           {"rtn_fallbacks", l.fallbacks},
                           {"seconds", l.seconds}});
  return j;
}

std::string to_text(const QuantizeReport& r) {
  std::string out = fmt::format("{} {} on {} calibration tokens\n", r.method, r.format, r.calib_tokens);
  out += fmt::format("  {:>5}  {:>12}  {:>22}  {:>8}\n", "layer", "rel. error", "tokens/expert min..max", "time s");
  for (const auto& l : r.layers) {
    auto [lo, hi] = std::minmax_element(l.tokens_per_expert.begin(), l.tokens_per_expert.end());
    out += fmt::format("  {:>5}  {:>12.5f}  {:>22}  {:>8.2f}\n", l.layer, l.relative_error,
                       fmt::format("{}..{}", *lo, *hi), l.seconds);
    for (const auto& f : l.fallbacks) out += fmt::format("         note: {}\n", f);
  }
  out += fmt::format("  experts: {:.3f} bits/weight ({} bytes); whole file: {:.3f} bits/weight ({} bytes)\n",
                     r.expert_bits_per_weight(), r.expert_bytes, r.file_bits_per_weight(), r.file_bytes);
  if (r.zero_fraction > 0) out += fmt::format("  zero codes: {:.1f}% of expert weights\n", 100 * r.zero_fraction);
  out += fmt::format("  time {:.2f} s, peak memory {:.1f} MiB\n", r.seconds, double(r.peak_rss) / (1 << 20));
  return out;
}

}  // namespace moec
