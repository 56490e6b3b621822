#include "quantize/pipeline.h"

#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Core>

#include <algorithm>
#include <array>
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
#include "quant/gemm.h"
#include "quant/sub1.h"
#include "quant/tensor_view.h"
#include "model/calibration.h"
#include "quantize/expert_exchange.h"
#include "quantize/rate_control.h"

namespace moec {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
constexpr int64_t kWindowBatch = 8;  // calibration windows run through attention together

// A matrix of the source in f32; its mapped pages leave the resident set
// (the source is read once, layer by layer).
RowMatrix to_f32(const CheckpointSource& source, const TensorKey& key) {
  TensorData data = source.read(key);
  const TensorInfo& info = data.info();
  RowMatrix m(info.shape[0], info.shape[1]);
  convert_to_f32(*info.dense_dtype(), data.bytes().data(), m.data(), size_t(m.size()));
  data.release_pages();
  return m;
}

// x · Wᵀ in the CPU's best ISA (quant/gemm.h).
RowMatrix times_transposed(const RowMatrix& x, const RowMatrix& w) {
  RowMatrix out(x.rows(), w.rows());
  gemm_f32(out.data(), out.cols(), x.data(), x.cols(), w.data(), w.cols(), true, x.rows(), w.rows(), x.cols());
  return out;
}

RowMatrix dequantized(const QuantizedMatrix& q) {
  RowMatrix m(q.rows, q.cols);
  dequantize_rows(q.view(), 0, q.rows, m.data());
  return m;
}

// silu(x·W1ᵀ) ⊙ x·W3ᵀ: the input of w2.
RowMatrix expert_hidden(const RowMatrix& x, const RowMatrix& w1, const RowMatrix& w3) {
  RowMatrix gate = times_transposed(x, w1);
  RowMatrix up = times_transposed(x, w3);
  silu_mul(gate.data(), up.data(), gate.size());
  return gate;
}


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

QuantizedMatrix quantize_matrix(const RowMatrix& w, HessianAccumulator h, const QuantizeOptions& o,
                                std::vector<std::string>& fallbacks, const std::string& what) {
  QuantFormat format = o.format;
  if (format.kind == GridKind::Sub1) format.level_scale = w.cwiseAbs().maxCoeff();  // the tensor's level reference
  if (!o.gptq) return quantize_rtn(w.data(), w.rows(), w.cols(), format);
  QuantizeOutcome out = quantize_gptq(w.data(), w.rows(), w.cols(), std::move(h), format, o.gptq_options);
  if (out.used_rtn) fallbacks.push_back(fmt::format("{}: {} (RTN used)", what, out.note));
  return std::move(out.matrix);
}

// A large matrix (the embedding, lm_head) quantized `slice_rows` rows at a
// time by `quantize_slice(rows f32, n, cols)`, for quantizers whose rows do
// not depend on the other rows: no f32 copy of the whole matrix is made
// (Mixtral's lm_head: 524 MB).
template <typename QuantizeSlice>
QuantizedMatrix quantize_row_slices(const CheckpointSource& source, const TensorKey& key, const QuantFormat& format,
                                    int64_t slice_rows, QuantizeSlice quantize_slice) {
  TensorData data = source.read(key);
  const TensorInfo& info = data.info();
  const int64_t rows = info.shape[0], cols = info.shape[1], row_bytes = format.row_bytes(cols),
                groups = format.groups(cols);
  QuantizedMatrix out(format, rows, cols);
  std::vector<float> slice;
  const size_t in_row = size_t(cols) * dtype_size(*info.dense_dtype());
  for (int64_t r0 = 0; r0 < rows; r0 += slice_rows) {
    const int64_t n = std::min(slice_rows, rows - r0);
    slice.resize(size_t(n * cols));
    convert_to_f32(*info.dense_dtype(), data.bytes().data() + size_t(r0) * in_row, slice.data(), slice.size());
    const QuantizedMatrix part = quantize_slice(slice.data(), n, cols);
    std::copy(part.codes.begin(), part.codes.end(), out.codes.begin() + r0 * row_bytes);
    std::copy(part.scales.begin(), part.scales.end(), out.scales.begin() + r0 * groups * format.scales_per_group());
    std::copy(part.zeros.begin(), part.zeros.end(), out.zeros.begin() + r0 * groups);
  }
  return out;
}

// Round-to-nearest: grids are per row and group.
QuantizedMatrix quantize_rtn_rows(const CheckpointSource& source, const TensorKey& key, const QuantFormat& format) {
  return quantize_row_slices(source, key, format, 1024, [&](const float* w, int64_t n, int64_t cols) {
    return quantize_rtn(w, n, cols, format);
  });
}

// GPTQ against one Hessian: GPTQ quantizes rows independently given the
// Hessian (the column order and the inverse are the Hessian's). Each slice
// factors the Hessian again, so slices are 64 MiB of f32 (4096 rows of
// Mixtral's 4096 columns: 8 factorizations for its lm_head), at least 1024 rows.
QuantizedMatrix quantize_gptq_rows(const CheckpointSource& source, const TensorKey& key,
                                   const HessianAccumulator& hessian, const QuantFormat& format,
                                   const GptqOptions& options, std::vector<std::string>& fallbacks) {
  bool fell_back = false;
  const int64_t slice_rows = std::max<int64_t>(1024, (int64_t(64) << 20) / 4 / std::max<int64_t>(hessian.cols(), 1));
  return quantize_row_slices(source, key, format, slice_rows, [&](const float* w, int64_t n, int64_t cols) {
    QuantizeOutcome part = quantize_gptq(w, n, cols, hessian, format, options);
    if (part.used_rtn && !fell_back) {
      fallbacks.push_back(fmt::format("{}: {} (RTN used)", logical_name(key), part.note));
      fell_back = true;
    }
    return std::move(part.matrix);
  });
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

// One expert's three matrices, holding at most one of them in f32 beside
// one Hessian (for Mixtral's w2: 235 MB and 822 MB): w1 and w3 from the
// block input's Hessian, then w2 from the Hessian of its real input through
// the quantized w1 and w3.
ExpertResult quantize_expert(const CheckpointSource& source, const MlpKeys& keys, const ExpertTokens& tokens,
                             const QuantizeOptions& o) {
  ExpertResult r;
  const std::string name = logical_name(keys.gate).substr(0, logical_name(keys.gate).rfind('.'));
  const int64_t hidden = source.info(keys.gate).shape[1], inner = source.info(keys.down).shape[1];
  {
    Stopwatch clock;
    HessianAccumulator block_input(o.gptq ? hidden : 0);
    if (o.gptq) tokens.for_each_chunk([&](int64_t, const RowMatrix& x) { block_input.add(x.data(), x.rows(), x.cols()); });
    r.hessian_seconds += clock.seconds();
    Stopwatch gptq;
    r.w1 = quantize_matrix(to_f32(source, keys.gate), block_input, o, r.fallbacks, name + ".w1");
    r.w3 = quantize_matrix(to_f32(source, keys.up), std::move(block_input), o, r.fallbacks, name + ".w3");
    r.gptq_seconds += gptq.seconds();
  }
  Stopwatch clock;
  HessianAccumulator down_input(o.gptq ? inner : 0);
  if (o.gptq) {
    const RowMatrix q1 = dequantized(r.w1), q3 = dequantized(r.w3);
    tokens.for_each_chunk([&](int64_t, const RowMatrix& x) {
      RowMatrix hidden_state = expert_hidden(x, q1, q3);
      down_input.add(hidden_state.data(), hidden_state.rows(), hidden_state.cols());
    });
  }
  r.hessian_seconds += clock.seconds();
  Stopwatch gptq;
  r.w2 = quantize_matrix(to_f32(source, keys.down), std::move(down_input), o, r.fallbacks, name + ".w2");
  r.gptq_seconds += gptq.seconds();
  return r;
}

// The sub1 dictionary of every layer: built from the trit counts of the
// first layer's experts. One dictionary per model keeps one 1 MiB decoding
// table resident instead of one per layer, and layers' statistics differ
// little (`moec bench sub1` measures per-model, per-layer and per-tensor
// dictionaries: the difference is under 1%).
Sub1Census layer_census(const std::vector<ExpertResult>& experts) {
  Sub1Census census;
  for (const auto& e : experts)
    for (const QuantizedMatrix* m : {&e.w1, &e.w2, &e.w3}) {
      TritCounts c = count_trits(trits_of(*m));
      for (int i = 0; i < 3; ++i) census.trits[i] += c[i];
      census.rows += m->rows;
      ++census.matrices;
    }
  return census;
}

double zero_share(const QuantizedMatrix& m) {
  uint64_t zeros = 0;
  const int64_t row_bytes = m.format.row_bytes(m.cols);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) zeros += ternary_code(m.codes.data() + r * row_bytes, c) == 1;
  return double(zeros);
}

// Whether the lm_head is quantized by GPTQ (its own pass after the layers):
// untied, --non-expert quantizing, GPTQ the method.
bool lm_head_by_gptq(const ModelConfig& c, const QuantizeOptions& o) {
  return !c.tie_word_embeddings && o.non_expert.lm_head && o.gptq;
}

class LayerQuantizer {
 public:
  // writer: null on the ranks of an MPI job that do not write (all but 0).
  LayerQuantizer(const CheckpointSource& source, Model& model, const QuantizeOptions& o, ContainerWriter* writer,
                 QuantizeReport& report)
      : source_(source), model_(model), o_(o), writer_(writer), report_(report),
        arch_(*find_architecture(source.config().model_type)) {}

  void write_dense(const TensorKey& key) {
    TensorData data = source_.read(key);
    if (writer_) writer_->write_dense(data.info(), hf_name(arch_, key), data.bytes());
    data.release_pages();
  }

  // The embedding or lm_head: as stored, or (--non-expert) RTN-quantized.
  // Returns the quantized matrix (empty when kept).
  QuantizedMatrix write_embedding_like(const TensorKey& key) {
    const std::optional<QuantFormat>& format =
        key.role == TensorRole::LmHead ? o_.non_expert.lm_head : o_.non_expert.embedding;
    if (!format) {
      write_dense(key);
      return {};
    }
    QuantizedMatrix m = quantize_rtn_rows(source_, key, *format);
    write_quantized(key, m);
    return m;
  }

  // GPTQ settings of the non-expert matrices (attention, lm_head): GPTQ's
  // own defaults, act-order and dampening 0.01, whatever the experts use
  // (--damp and --act-order are the experts': QMoE's settings, damp 0.1
  // without act-order, suit ternary experts, but on the shipped model's
  // 3-bit attention and lm_head they cost 0.23 perplexity more than these).
  GptqOptions non_expert_gptq() const {
    GptqOptions g;
    g.damp = 0.01;
    g.act_order = true;
    return g;
  }

  // lm_head (untied): as stored, or (--non-expert) by GPTQ from the Hessian
  // of its real input, the final-normed calibration stream after every
  // quantized layer (RTN with --method rtn). At 3 bits GPTQ here instead of
  // round-to-nearest took the shipped model's perplexity from 119.25 to
  // 118.18 (docs/rate-distortion.md).
  void write_lm_head(const std::vector<float>& x) {
    const TensorKey key{TensorRole::LmHead};
    if (!lm_head_by_gptq(source_.config(), o_)) {
      write_embedding_like(key);
      return;
    }
    const int64_t h = source_.config().hidden_size, rows = int64_t(x.size()) / h;
    HessianAccumulator input(h);
    constexpr int64_t kRows = 4096;  // normed rows at a time
    std::vector<float> normed;
    for (int64_t r0 = 0; r0 < rows; r0 += kRows) {
      const int64_t n = std::min(kRows, rows - r0);
      normed.resize(size_t(n * h));
      model_.final_norm(&x[size_t(r0 * h)], n, normed.data());
      input.add(normed.data(), n, h);
    }
    std::vector<std::string> fallbacks;
    const QuantizedMatrix m =
        quantize_gptq_rows(source_, key, input, *o_.non_expert.lm_head, non_expert_gptq(), fallbacks);
    if (!report_.layers.empty())  // reported with the last layer's notes (the message names lm_head)
      for (auto& f : fallbacks) report_.layers.back().fallbacks.push_back(std::move(f));
    write_quantized(key, m);
  }

  // Runs layer `l` on the calibration stream x (in place) and writes it.
  void run(int64_t l, std::vector<float>& x, int64_t windows) {
    Stopwatch clock;
    const ModelConfig& c = source_.config();
    LayerReport layer;
    layer.layer = l;
    std::vector<QuantizedMatrix> attention;
    const Model::AttentionWeights stored_attention = model_.attention_weights(l);
    if (o_.non_expert.attention) attention = quantize_attention(l, x, windows, layer.fallbacks);
    const bool sparse = c.moe_layer(l);
    const bool shared = sparse && c.shared_expert_size > 0 && !o_.keep_shared;
    // The MLPs quantized here: the routed experts (then the shared one), or
    // a dense layer's MLP.
    const int64_t routed = sparse ? c.num_experts : 1, experts = routed + (shared ? 1 : 0);
    const int64_t h = c.hidden_size, batch_tokens = kWindowBatch * o_.ctx;
    const float eps = float(c.rms_norm_eps);
    MpiWorld& world = MpiWorld::get();
    for (int64_t w0 = 0; w0 < windows; w0 += kWindowBatch) {
      if (!owns_batch(world, w0 / kWindowBatch)) continue;  // under mpirun: another rank's batch
      const int64_t batch = std::min(kWindowBatch, windows - w0);
      KvCache cache(1, batch, o_.ctx, c.num_kv_heads * c.head_dim);
      model_.attention_layer(l, &x[w0 * o_.ctx * h], o_.ctx, cache, 0);
    }
    share_batches(x, size_t(batch_tokens * h), world);
    layer.attention_seconds = clock.seconds();
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

    Stopwatch reference_clock;
    const std::vector<float> reference = reference_output(l, x);
    layer.attention_seconds += reference_clock.seconds();
    auto quantize_experts = [&](const QuantizeOptions& o) {
      std::vector<ExpertResult> results(static_cast<size_t>(experts));
      MpiWorld& world = MpiWorld::get();
      std::vector<size_t> mine;  // this rank's experts (all of them in one process)
      for (size_t e = 0; e < size_t(experts); ++e)
        if (owns_expert(world, e)) mine.push_back(e);
      model_.pool().parallel_for(mine.size(), [&](size_t i, int) {
        const size_t e = mine[i];
        ExpertTokens tokens(x, rows[e], model_.moe_norm(l), eps);
        results[e] = quantize_expert(source_, mlp_keys(c, int(l), int(e)), tokens, o);
        if (o.progress) o.progress(l, int64_t(e), experts);
      });
      share_expert_results(results, world);
      return results;
    };
    const bool rate_aware = o_.gptq && (o_.gptq_options.rate.lambda > 0 || o_.target_bits > 0);
    Stopwatch experts_clock;
    std::vector<ExpertResult> results = rate_aware ? quantize_rate_aware(l, layer, quantize_experts) : quantize_experts(o_);
    layer.experts_seconds = experts_clock.seconds();
    for (const ExpertResult& r : results) {
      layer.hessian_seconds += r.hessian_seconds;
      layer.gptq_seconds += r.gptq_seconds;
    }
    if (o_.format.ternary()) {
      const Sub1Census census = layer_census(results);
      layer.zero_fraction = double(census.trits[1]) / double(std::max<int64_t>(1, census.weights()));
    }
    for (int64_t e = 0; e < experts; ++e) {
      if (e < routed) layer.tokens_per_expert.push_back(int64_t(rows[e].size()));
      for (auto& f : results[e].fallbacks) layer.fallbacks.push_back(f);
    }
    Stopwatch propagate_clock;
    layer.relative_error = propagate(l, x, results, reference);
    layer.forward_seconds = layer.attention_seconds + propagate_clock.seconds();
    Stopwatch write_clock;
    if (o_.format.kind == GridKind::Sub1 && !dictionary_) dictionary_ = &shared_dictionary(layer_census(results).trits);
    std::set<TensorKey> quantized;
    for (size_t i = 0; i < attention.size(); ++i) {
      write_quantized(attention_keys(l)[i], attention[i]);
      quantized.insert(attention_keys(l)[i]);
    }
    model_.set_attention_weights(l, stored_attention);  // the quantized views die with `attention`
    for (int64_t e = 0; e < experts; ++e) {
      write_expert(l, e, results[e]);
      const MlpKeys keys = mlp_keys(c, int(l), int(e));
      quantized.insert({keys.gate, keys.down, keys.up});
    }
    // Everything else of the layer (attention, norms, biases, router, the
    // shared expert's gate, a kept shared expert) keeps its stored precision.
    for (const TensorKey& key : expected_tensors(c))
      if (key.layer == int(l) && !quantized.contains(key)) write_dense(key);
    layer.write_seconds = write_clock.seconds();
    // The layer is done: its mapped source pages leave the resident set, so
    // memory does not grow with the number of layers.
    for (const TensorInfo& t : source_.tensors())
      if (t.key.layer == int(l)) source_.read(t.key).release_pages();
    layer.seconds = clock.seconds();
    layer.peak_rss = peak_rss_bytes();
    report_.layers.push_back(std::move(layer));
  }

 private:
  static std::array<TensorKey, 4> attention_keys(int64_t l) {
    const int i = int(l);
    return {TensorKey{TensorRole::AttnQ, i, -1}, TensorKey{TensorRole::AttnK, i, -1},
            TensorKey{TensorRole::AttnV, i, -1}, TensorKey{TensorRole::AttnO, i, -1}};
  }

  void write_quantized(const TensorKey& key, const QuantizedMatrix& m) {
    TensorInfo info = source_.info(key);
    if (writer_) writer_->write_encoded(info, hf_name(arch_, key), describe_quantized(m, info));
    report_.non_expert_params += uint64_t(m.rows * m.cols);
    report_.non_expert_bytes += m.bytes();
  }

  // Runs the layer's attention over a copy of the calibration stream (x is
  // left alone), handing the tap each batch's inputs.
  void attention_inputs(int64_t l, const std::vector<float>& x, int64_t windows, Model::AttentionTap tap) {
    const ModelConfig& c = source_.config();
    const int64_t h = c.hidden_size;
    std::vector<float> scratch;
    model_.set_attention_tap(std::move(tap));
    for (int64_t w0 = 0; w0 < windows; w0 += kWindowBatch) {
      const int64_t batch = std::min(kWindowBatch, windows - w0);
      scratch.assign(x.begin() + w0 * o_.ctx * h, x.begin() + (w0 + batch) * o_.ctx * h);
      KvCache cache(1, batch, o_.ctx, c.num_kv_heads * c.head_dim);
      model_.attention_layer(l, scratch.data(), o_.ctx, cache, 0);
    }
    model_.set_attention_tap(nullptr);
  }

  // --non-expert: the layer's attention projections by GPTQ, before the
  // calibration stream runs through them (GPTQ's sequential order): q, k, v
  // from the Hessian of their normalized input, then o from the context the
  // quantized q, k, v produce. The model runs the quantized projections for
  // the rest of the layer (run() puts the stored ones back). Returns q, k, v, o.
  std::vector<QuantizedMatrix> quantize_attention(int64_t l, const std::vector<float>& x, int64_t windows,
                                                  std::vector<std::string>& fallbacks) {
    const ModelConfig& c = source_.config();
    const int64_t h = c.hidden_size, qd = c.num_heads * c.head_dim;
    const QuantFormat format = *o_.non_expert.attention;
    const auto keys = attention_keys(l);
    auto gptq = [&](const TensorKey& key, const HessianAccumulator& hessian) {
      const RowMatrix w = to_f32(source_, key);
      if (!o_.gptq) return quantize_rtn(w.data(), w.rows(), w.cols(), format);
      QuantizeOutcome out = quantize_gptq(w.data(), w.rows(), w.cols(), hessian, format, non_expert_gptq());
      if (out.used_rtn) fallbacks.push_back(fmt::format("{}: {} (RTN used)", logical_name(key), out.note));
      return std::move(out.matrix);
    };
    HessianAccumulator input(h), context(qd);
    attention_inputs(l, x, windows, [&](const float* normed, const float*, int64_t n) { input.add(normed, n, h); });
    std::vector<QuantizedMatrix> q;
    for (int i = 0; i < 3; ++i) q.push_back(gptq(keys[size_t(i)], input));
    Model::AttentionWeights w = model_.attention_weights(l);
    w.q = quantized_weights(q[0].view());
    w.k = quantized_weights(q[1].view());
    w.v = quantized_weights(q[2].view());
    model_.set_attention_weights(l, w);
    attention_inputs(l, x, windows, [&](const float*, const float* ctx, int64_t n) { context.add(ctx, n, qd); });
    q.push_back(gptq(keys[3], context));
    w.o = quantized_weights(q[3].view());
    model_.set_attention_weights(l, w);
    return q;
  }

  // Rate-aware GPTQ over the layer's experts (sub1 only): one pass at a
  // fixed λ, or --target-bits. The trits' code lengths are those of the
  // model's dictionary once layer 0 has fixed it; on layer 0 they are
  // re-estimated after each pass, starting from a prior of p(0) = 0.8, and
  // the layer runs at least twice.
  //
  // --target-bits keeps one λ for the model, not one per layer: equal λ is
  // equal slope (the same error bought per bit saved everywhere), and it
  // measured better than giving every layer the target's bits (shipped
  // model, QMoE's settings: λ 0.4 everywhere 0.890 bits at perplexity
  // 122.3, every layer searched to 0.9 bits 0.899 at 123.9). So layer 0
  // searches λ for the target (LambdaSearch); each later layer runs once, at
  // a λ moved from the last one just enough that the remaining layers, if
  // they respond as the last did, bring the model's mean to the target.
  template <typename QuantizeExperts>
  std::vector<ExpertResult> quantize_rate_aware(int64_t l, LayerReport& layer, QuantizeExperts&& quantize_experts) {
    QuantizeOptions o = o_;
    TritCounts counts = dictionary_ ? dictionary_->counts() : TritCounts{1, 8, 1};
    const bool search = o_.target_bits > 0 && !dictionary_;
    double lambda = o_.target_bits > 0 ? model_lambda_ : o_.gptq_options.rate.lambda;
    LambdaSearch lambdas(o_.target_bits, lambda);
    std::vector<ExpertResult> kept;
    int64_t weights = 0;
    for (layer.passes = 1;; ++layer.passes) {
      o.gptq_options.rate = {lambda, trit_code_lengths(counts)};
      std::vector<ExpertResult> results = quantize_experts(o);
      const Sub1Census census = layer_census(results);
      const double bits = dictionary_ ? expected_sub1_bits(*dictionary_, census)
                                      : expected_sub1_bits(TunstallDictionary(census.trits), census);
      const bool own_statistics = dictionary_ || layer.passes > 1;
      if (!dictionary_) counts = census.trits;
      bool keep = true;
      if (o_.target_bits > 0 && own_statistics) {  // layer 0's first pass only estimates the statistics
        layer.trials.emplace_back(lambda, bits);
        lambdas.observe(lambda, bits);
        keep = lambdas.best() == lambdas.trials() - 1;
      }
      if (keep) {
        kept = std::move(results);
        layer.rate_lambda = lambda;
        layer.expected_bits = bits;
        weights = census.weights();
      }
      if (own_statistics && (!search || lambdas.done())) break;
      if (search && own_statistics) lambda = lambdas.next();
    }
    if (o_.target_bits > 0) {
      if (search) slope_ = measured_slope(lambdas);
      steer_model_lambda(l, layer, weights);
    }
    return kept;
  }

  // Bits per unit of log λ between the two trials nearest the target
  // (negative); −0.1 when the search had no two (measured on the shipped
  // model: −0.09 to −0.12).
  static double measured_slope(const LambdaSearch& s) {
    std::vector<int> trials;
    for (int i = 0; i < s.trials(); ++i)
      if (s.lambda(i) > 0) trials.push_back(i);
    std::sort(trials.begin(), trials.end(), [&](int a, int b) {
      return std::abs(s.bits(a) - s.bits(s.best())) < std::abs(s.bits(b) - s.bits(s.best()));
    });
    for (size_t j = 1; j < trials.size(); ++j) {
      const int a = trials[0], b = trials[j];
      if (s.lambda(a) == s.lambda(b)) continue;
      const double slope = (s.bits(a) - s.bits(b)) / (std::log(s.lambda(a)) - std::log(s.lambda(b)));
      return slope < -0.01 ? slope : -0.1;
    }
    return -0.1;
  }

  // The λ of the next layer: what the remaining layers must average for the
  // model to land on the target, reached from this layer's bits along the
  // slope; moved by a factor of at most 4.
  void steer_model_lambda(int64_t l, const LayerReport& layer, int64_t weights) {
    spent_bits_ += layer.expected_bits * double(weights);
    spent_weights_ += double(weights);
    const double remaining = double(source_.config().num_layers - 1 - l) * double(weights);
    model_lambda_ = layer.rate_lambda > 0 ? layer.rate_lambda : model_lambda_;
    if (remaining <= 0) return;
    const double need = (o_.target_bits * (spent_weights_ + remaining) - spent_bits_) / remaining;
    const double step = 0.5 * std::clamp((need - layer.expected_bits) / slope_, -std::log(4.0), std::log(4.0));
    model_lambda_ *= std::exp(step);
  }

  // The layer's MoE block with its stored weights (a dense MLP: a block of
  // one expert under a one-row router, top-1 of one, weight exactly 1); `held`
  // keeps the dense MLP's tensors alive.
  MoeWeights original_weights(int64_t l, std::vector<TensorData>& held, const std::vector<float>& one_row) const {
    const ModelConfig& c = source_.config();
    MoeWeights original = model_.moe_weights(l);
    if (!c.moe_layer(l)) {
      original.router = f32_view(one_row.data(), 1, c.hidden_size);
      const MlpKeys keys = mlp_keys(c, int(l), 0);
      for (const TensorKey& key : {keys.gate, keys.down, keys.up}) held.push_back(source_.read(key));
      original.experts = {{weight_view(held[0]), weight_view(held[1]), weight_view(held[2])}};
    }
    return original;
  }

  // The stored MoE block's output for the first batch of calibration tokens
  // (what the layer's error is measured on), computed before quantizing;
  // then every expert's mapped pages leave the resident set, so the stored
  // experts are never resident all at once beside the quantizer's buffers.
  std::vector<float> reference_output(int64_t l, const std::vector<float>& x) {
    const ModelConfig& c = source_.config();
    const int64_t h = c.hidden_size, m = std::min(kWindowBatch * o_.ctx, int64_t(x.size()) / h);
    std::vector<TensorData> held;
    const std::vector<float> one_row(size_t(h), 0.0f);
    const MoeWeights original = original_weights(l, held, one_row);
    std::vector<float> normed(size_t(m * h)), reference(size_t(m * h), 0.0f);
    rms_norm(x.data(), m, h, model_.moe_norm(l).data(), float(c.rms_norm_eps), normed.data());
    MoeBlock block;
    constexpr int64_t kChunk = 512;  // the block's scratch grows with tokens × intermediate size
    MpiWorld& world = MpiWorld::get();
    for (int64_t t0 = 0; t0 < m; t0 += kChunk)
      if (owns_batch(world, t0 / kChunk))  // under mpirun the chunks are split like the batches
        block.forward(model_.pool(), original, c.moe_layer(l) ? c.top_k : 1, &normed[t0 * h],
                      std::min(kChunk, m - t0), &reference[t0 * h], nullptr);
    share_batches(reference, size_t(kChunk * h), world);
    for (const TensorInfo& t : source_.tensors())
      if (t.key.layer == int(l)) source_.read(t.key).release_pages();
    return reference;
  }

  // Runs the layer's MoE block with the quantized experts over the
  // calibration stream (the runtime's own kernels), adds its output to x,
  // and returns the relative error ‖MoE(x) − MoE_Q(x)‖ / ‖MoE(x)‖ on the
  // first batch of tokens (reference_output).
  double propagate(int64_t l, std::vector<float>& x, const std::vector<ExpertResult>& results,
                   const std::vector<float>& reference) {
    const ModelConfig& c = source_.config();
    const int64_t h = c.hidden_size, n = int64_t(x.size()) / h, batch_tokens = kWindowBatch * o_.ctx;
    std::vector<TensorData> held;
    const std::vector<float> one_row(size_t(h), 0.0f);
    MoeWeights quantized = original_weights(l, held, one_row);
    const int64_t top_k = c.moe_layer(l) ? c.top_k : 1;
    for (size_t e = 0; e < results.size(); ++e) {
      auto view = [](const QuantizedMatrix& m) { return quantized_weights(m.view()); };
      const ExpertWeights weights{view(results[e].w1), view(results[e].w2), view(results[e].w3)};
      if (e < quantized.experts.size())
        quantized.experts[e] = weights;
      else
        quantized.shared = weights;  // the shared expert, last
    }
    MoeBlock block;
    std::vector<float> normed, output;
    double diff = 0, norm = 0;
    MpiWorld& world = MpiWorld::get();
    for (int64_t t0 = 0; t0 < n; t0 += batch_tokens) {
      if (!owns_batch(world, t0 / batch_tokens)) continue;  // under mpirun: another rank's batch
      const int64_t m = std::min(batch_tokens, n - t0);
      normed.resize(size_t(m * h));
      rms_norm(&x[t0 * h], m, h, model_.moe_norm(l).data(), float(c.rms_norm_eps), normed.data());
      output.assign(size_t(m * h), 0.0f);
      block.forward(model_.pool(), quantized, top_k, normed.data(), m, output.data(), nullptr);
      for (int64_t i = 0; i < m * h; ++i) {
        if (t0 == 0) {
          diff += double(reference[i] - output[i]) * double(reference[i] - output[i]);
          norm += double(reference[i]) * double(reference[i]);
        }
        x[t0 * h + i] += output[i];  // the next layer sees the quantized layer's output
      }
    }
    share_batches(x, size_t(batch_tokens * h), world);
    return norm > 0 ? std::sqrt(diff / norm) : 0.0;  // measured by batch 0's owner (rank 0)
  }

  void write_expert(int64_t l, int64_t e, const ExpertResult& r) {
    if (!writer_) return;  // a rank that does not write: no encoding either
    const MlpKeys keys = mlp_keys(source_.config(), int(l), int(e));
    const std::pair<TensorKey, const QuantizedMatrix*> mats[] = {{keys.gate, &r.w1}, {keys.down, &r.w2}, {keys.up, &r.w3}};
    for (const auto& [key, m] : mats) {
      TensorInfo info = source_.info(key);
      if (m->format.kind == GridKind::Sub1) {
        const Sub1Matrix coded = encode_sub1(*m, *dictionary_);
        writer_->write_encoded(info, hf_name(arch_, key), describe_sub1(coded, info));
        report_.expert_bytes += coded.bytes();
      } else {
        writer_->write_encoded(info, hf_name(arch_, key), describe_quantized(*m, info));
        report_.expert_bytes += m->bytes();
      }
      report_.expert_params += uint64_t(m->rows * m->cols);
      if (m->format.ternary()) report_.zero_fraction += zero_share(*m);
    }
  }

  const CheckpointSource& source_;
  Model& model_;
  const QuantizeOptions& o_;
  ContainerWriter* writer_;
  QuantizeReport& report_;
  const ArchitectureNames& arch_;
  const TunstallDictionary* dictionary_ = nullptr;  // sub1: from the first layer
  // --target-bits: the model's λ (layer 0's search starts at 0.2, about
  // 1 bit on the shipped model), bits per log λ, bits and weights so far.
  double model_lambda_ = 0.2, slope_ = -0.1;
  double spent_bits_ = 0, spent_weights_ = 0;
};

// The whole model from its first layer (--dry-run).
Projection project(const CheckpointSource& source, const QuantizeReport& r, double setup_seconds,
                   const QuantizeOptions& o) {
  Projection p;
  const ModelConfig& c = source.config();
  p.layers_measured = int64_t(r.layers.size());
  p.layers_total = c.num_layers;
  p.setup_seconds = setup_seconds;
  for (const LayerReport& l : r.layers) p.seconds_per_layer += l.seconds / double(r.layers.size());
  p.seconds = setup_seconds + p.seconds_per_layer * double(c.num_layers);
  p.peak_rss = peak_rss_bytes();
  // Experts at the measured bytes per weight; the rest as stored, or in the
  // affine code --non-expert gives its kind.
  const double expert_bytes_per_weight = double(r.expert_bytes) / double(std::max<uint64_t>(1, r.expert_params));
  const std::optional<QuantFormat> kept;
  double bytes = 0;
  for (const TensorInfo& t : source.tensors()) {
    const Component part = component_of(t.key.role);
    const bool expert = part == Component::Experts || part == Component::Mlp ||
                        (part == Component::SharedExperts && !o.keep_shared && t.shape.size() == 2 &&
                         t.key.role != TensorRole::SharedGate);
    const std::optional<QuantFormat>& code = part == Component::Attention ? o.non_expert.attention
                                             : part == Component::Embedding ? o.non_expert.embedding
                                             : part == Component::LmHead    ? o.non_expert.lm_head
                                                                            : kept;
    const bool coded = code && t.shape.size() == 2;
    bytes += expert  ? double(t.numel()) * expert_bytes_per_weight
             : coded ? double(code->stored_bytes(t.shape[0], t.shape[1]))
                     : double(t.nbytes);
  }
  p.file_bytes = uint64_t(bytes);
  return p;
}

}  // namespace

static std::string spec_or_keep(const std::optional<QuantFormat>& f) { return f ? f->spec() : "keep"; }

std::string NonExpertPlan::spec() const {
  const std::string a = spec_or_keep(attention), e = spec_or_keep(embedding), h = spec_or_keep(lm_head);
  if (a == e && e == h) return a;
  return fmt::format("attn={},embed={},head={}", a, e, h);
}

NonExpertPlan NonExpertPlan::tied() const {
  NonExpertPlan plan = *this;
  plan.lm_head = embedding;
  return plan;
}

NonExpertPlan parse_non_expert(std::string_view spec) {
  auto format = [&](std::string_view value) -> std::optional<QuantFormat> {
    if (value == "keep") return std::nullopt;
    static const std::array<std::string_view, 4> shorthand{"q8", "q4", "q3", "q2"};
    const std::string full = std::find(shorthand.begin(), shorthand.end(), value) != shorthand.end()
                                 ? fmt::format("{}g128", value)
                                 : std::string(value);
    std::optional<QuantFormat> f;
    try {
      f = QuantFormat::parse(full);
    } catch (const Error&) {
    }
    if (!f || f->kind != GridKind::Affine)
      fail("--non-expert '{}': '{}' is not keep, q8, q4, q3, q2 or q<bits 2-8>g<group>", spec, value);
    return f;
  };
  NonExpertPlan plan;
  if (spec.empty()) fail("--non-expert: empty; expected e.g. keep, q3 or q3,attn=q2g32,head=q4");
  for (size_t start = 0; start <= spec.size();) {
    const size_t end = std::min(spec.find(',', start), spec.size());
    std::string_view item = spec.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) fail("--non-expert '{}': an empty item (two commas, or one at an end)", spec);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      plan.attention = plan.embedding = plan.lm_head = format(item);
    } else {
      const std::string_view kind = item.substr(0, eq);
      const std::optional<QuantFormat> f = format(item.substr(eq + 1));
      if (kind == "attn") plan.attention = f;
      else if (kind == "embed") plan.embedding = f;
      else if (kind == "head") plan.lm_head = f, plan.lm_head_given = true;
      else fail("--non-expert '{}': unknown kind '{}' (attn, embed or head)", spec, kind);
    }
    start = end + 1;
  }
  return plan;
}

QuantizeReport quantize_model(const CheckpointSource& source, const std::filesystem::path& out,
                              const QuantizeOptions& o, ThreadPool& pool) {
  Stopwatch clock;
  for (const TensorInfo& t : source.tensors())
    if (t.encoded()) fail("{}: tensor '{}' is already quantized; quantize from a dense checkpoint", source.path().string(), t.name);
  const bool rate_aware = o.gptq_options.rate.lambda > 0 || o.target_bits > 0;
  if (rate_aware && o.format.kind != GridKind::Sub1)
    fail("--rate-lambda / --target-bits trade bits of the sub1 code: use --bits ternary --code sub1 "
         "(packed ternary codes take 1.6 bits whatever the trits)");
  if (rate_aware && !o.gptq) fail("--rate-lambda / --target-bits need --method gptq");
  if (o.gptq_options.level_fits > 0 && !(o.format.ternary() && o.gptq))
    fail("--fit-levels refits ternary levels inside GPTQ: use --bits ternary with --method gptq");
  Tokenizer tokenizer = Tokenizer::from_checkpoint(source);
  const std::string calib_text = read_text_file(o.calib);
  std::vector<int32_t> calib = calibration_windows(tokenizer.encode(calib_text), o.calib_windows, o.ctx, o.seed);
  if (o.ctx > source.config().max_position_embeddings)
    fail("--ctx {} exceeds the model's max_position_embeddings {}", o.ctx, source.config().max_position_embeddings);
  const int64_t windows = int64_t(calib.size()) / o.ctx;

  QuantizeReport report;
  // A tied lm_head is the embedding: it takes embed='s code, and head= may
  // not ask for another.
  const ModelConfig& config = source.config();
  if (config.tie_word_embeddings && o.non_expert.lm_head_given &&
      spec_or_keep(o.non_expert.lm_head) != spec_or_keep(o.non_expert.embedding))
    fail("--non-expert '{}': {}'s lm_head is its embedding (tie_word_embeddings): set both with embed=",
         o.non_expert.spec(), source.path().string());
  report.non_expert = (config.tie_word_embeddings ? o.non_expert.tied() : o.non_expert).spec();
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
                             {"non_expert", report.non_expert},
                             {"rate_lambda", o.gptq_options.rate.lambda},
                             {"target_bits", o.target_bits},
                             {"level_fits", o.gptq_options.level_fits},
                             {"code", o.format.kind == GridKind::Sub1 ? "sub1: Tunstall dictionary from layer 0's trit counts"
                                                                      : "packed"},
                             {"calibration", {{"file", std::filesystem::absolute(o.calib).string()},
                                              {"crc32", fmt::format("{:08x}", crc32_bytes(calib_text))},
                                              {"windows", windows},
                                              {"ctx", o.ctx},
                                              {"seed", o.seed}}}};
  // A dry run never commits, so an existing output is never touched.
  MpiWorld& world = MpiWorld::get();
  std::optional<ContainerWriter> writer;  // rank 0 writes
  if (world.root()) {
    writer.emplace(out, o.overwrite || o.dry_run, source.config_json(), provenance);
    writer->write_tokenizers(source.tokenizer_files());
  }

  Model model(source, pool);
  LayerQuantizer layers(source, model, o, writer ? &*writer : nullptr, report);
  const QuantizedMatrix embedding = layers.write_embedding_like({TensorRole::Embed});
  std::vector<float> x;
  model.embed(calib, x);
  if (!embedding.codes.empty())  // the calibration stream starts from the quantized rows
    for (size_t t = 0; t < calib.size(); ++t)
      dequantize_rows(embedding.view(), calib[t], 1, &x[t * size_t(source.config().hidden_size)]);
  const double setup_seconds = clock.seconds();
  const int64_t layers_run = o.dry_run ? std::min<int64_t>(1, source.config().num_layers) : source.config().num_layers;
  for (int64_t l = 0; l < layers_run; ++l) layers.run(l, x, windows);
  if (o.dry_run) {  // nothing is committed: the writer's temporary goes with it
    double lm_head_seconds = 0;
    if (lm_head_by_gptq(source.config(), o)) {
      Stopwatch lm_head;
      layers.write_lm_head(x);
      lm_head_seconds = lm_head.seconds();
    }
    report.zero_fraction = o.format.ternary() ? report.zero_fraction / double(report.expert_params) : 0.0;
    report.projection = project(source, report, setup_seconds, o);
    report.projection->lm_head_seconds = lm_head_seconds;
    report.projection->seconds += lm_head_seconds;
    report.seconds = clock.seconds();
    report.peak_rss = peak_rss_bytes();
    return report;
  }
  layers.write_dense({TensorRole::FinalNorm});
  if (!source.config().tie_word_embeddings) layers.write_lm_head(x);
  if (writer) writer->commit();

  report.zero_fraction = o.format.ternary() ? report.zero_fraction / double(report.expert_params) : 0.0;
  for (const TensorInfo& t : source.tensors()) report.total_params += t.numel();
  report.file_bytes = world.root() ? std::filesystem::file_size(out) : 0;
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
                           {"non_expert", r.non_expert},
                           {"file_bytes", r.file_bytes},
                           {"seconds", r.seconds},
                           {"peak_rss_bytes", r.peak_rss}};
  if (r.non_expert_params > 0) j["non_expert_bits_per_weight"] = r.non_expert_bits_per_weight();
  if (const auto& p = r.projection)
    j["projection"] = {{"layers_measured", p->layers_measured},
                       {"layers_total", p->layers_total},
                       {"setup_seconds", p->setup_seconds},
                       {"seconds_per_layer", p->seconds_per_layer},
                       {"seconds", p->seconds},
                       {"lm_head_seconds", p->lm_head_seconds},
                       {"peak_rss_bytes", p->peak_rss},
                       {"file_bytes", p->file_bytes}};
  if (r.zero_fraction > 0) j["zero_fraction"] = r.zero_fraction;
  for (const auto& l : r.layers)
    j["layers"].push_back({{"layer", l.layer},
                           {"relative_output_error", l.relative_error},
                           {"tokens_per_expert", l.tokens_per_expert},
                           {"rtn_fallbacks", l.fallbacks},
                           {"seconds", l.seconds},
                           {"time_breakdown",
                            {{"forward_seconds", l.forward_seconds},
                             {"experts_seconds", l.experts_seconds},
                             {"hessian_thread_seconds", l.hessian_seconds},
                             {"gptq_thread_seconds", l.gptq_seconds},
                             {"encode_write_seconds", l.write_seconds}}},
                           {"peak_rss_bytes", l.peak_rss}});
  for (size_t i = 0; i < r.layers.size(); ++i) {
    const LayerReport& l = r.layers[i];
    if (l.zero_fraction > 0) j["layers"][i]["zero_fraction"] = l.zero_fraction;
    if (l.expected_bits > 0) {
      j["layers"][i]["rate_lambda"] = l.rate_lambda;
      j["layers"][i]["gptq_passes"] = l.passes;
      j["layers"][i]["expected_expert_bits_per_weight"] = l.expected_bits;
      if (!l.trials.empty()) {
        auto& trials = j["layers"][i]["lambda_search"];
        for (const auto& [lambda, bits] : l.trials) trials.push_back({{"lambda", lambda}, {"bits", bits}});
      }
    }
  }
  return j;
}

std::string to_text(const QuantizeReport& r) {
  std::string out = fmt::format("{} {} on {} calibration tokens\n", r.method, r.format, r.calib_tokens);
  out += fmt::format("  {:>5}  {:>12}  {:>22}  {:>8}  {:>34}  {:>9}\n", "layer", "rel. error", "tokens/expert min..max",
                     "time s", "forward/experts(hess+gptq)/write", "peak MiB");
  for (const auto& l : r.layers) {
    auto [lo, hi] = std::minmax_element(l.tokens_per_expert.begin(), l.tokens_per_expert.end());
    out += fmt::format("  {:>5}  {:>12.5f}  {:>22}  {:>8.2f}  {:>34}  {:>9.1f}\n", l.layer, l.relative_error,
                       fmt::format("{}..{}", *lo, *hi), l.seconds,
                       fmt::format("{:.1f}/{:.1f}({:.1f}+{:.1f})/{:.1f}", l.forward_seconds, l.experts_seconds,
                                   l.hessian_seconds, l.gptq_seconds, l.write_seconds),
                       double(l.peak_rss) / (1 << 20));
    if (l.expected_bits > 0)
      out += fmt::format("         rate-aware: lambda {:.4g}, {} GPTQ pass(es), {:.3f} bits/weight expected, {:.1f}% zeros\n",
                         l.rate_lambda, l.passes, l.expected_bits, 100 * l.zero_fraction);
    for (const auto& f : l.fallbacks) out += fmt::format("         note: {}\n", f);
  }
  out += fmt::format("  experts: {:.3f} bits/weight ({} bytes); whole file: {:.3f} bits/weight ({} bytes)\n",
                     r.expert_bits_per_weight(), r.expert_bytes, r.file_bits_per_weight(), r.file_bytes);
  if (r.non_expert_params > 0)
    out += fmt::format("  non-expert tensors ({}): {:.3f} bits/weight over {} weights (routers, norms, biases as stored)\n",
                       r.non_expert, r.non_expert_bits_per_weight(), r.non_expert_params);
  if (r.zero_fraction > 0) out += fmt::format("  zero codes: {:.1f}% of expert weights\n", 100 * r.zero_fraction);
  out += fmt::format("  time {:.2f} s, peak memory {:.1f} MiB\n", r.seconds, double(r.peak_rss) / (1 << 20));
  if (const auto& p = r.projection)
    out += fmt::format("  dry run, nothing written. Projected for all {} layers from {} on this machine: {:.0f} s "
                       "({:.1f} h: {:.0f} s setup + {:.0f} s per layer{}), peak memory {:.2f} GiB, file {:.2f} GB\n",
                       p->layers_total, p->layers_measured, p->seconds, p->seconds / 3600, p->setup_seconds,
                       p->seconds_per_layer,
                       p->lm_head_seconds > 0 ? fmt::format(" + {:.0f} s lm_head GPTQ", p->lm_head_seconds) : "",
                       double(p->peak_rss) / double(1 << 30), double(p->file_bytes) / 1e9);
  return out;
}

}  // namespace moec
