#include "merge/pipeline.h"

#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Cholesky>
#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "io/checkpoint.h"
#include "io/checksum.h"
#include "io/container.h"
#include "io/error.h"
#include "io/hf_writer.h"
#include "io/process_stats.h"
#include "io/safetensors.h"
#include "io/text_file.h"
#include "merge/alignment.h"
#include "model/calibration.h"
#include "model/model.h"
#include "model/ops.h"
#include "model/thread_pool.h"
#include "model/tokenizer.h"
#include "quant/gemm.h"

namespace moec {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMatrix>;
constexpr int64_t kWindowBatch = 8;

// A stored tensor in f32; its mapped pages leave the resident set (each
// expert is read a few times per layer, from the page cache, never held).
std::vector<float> to_f32(const CheckpointSource& source, const TensorKey& key) {
  const TensorData data = source.read(key);
  std::vector<float> out = data.to_f32();
  data.release_pages();
  return out;
}

std::vector<std::byte> to_dtype(const std::vector<float>& v, DType dtype) {
  std::vector<std::byte> out(v.size() * dtype_size(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(&out[i * 4], &v[i], 4);
    } else {
      uint16_t b = dtype == DType::BF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
      std::memcpy(&out[i * 2], &b, 2);
    }
  }
  return out;
}

// Expert e of layer l in f32: the matrices selected by `which` (bits 1: w1,
// 2: w2, 4: w3), neurons reordered by `p` when given (neuron i becomes p[i]:
// w1/w3 rows, w2 columns).
ExpertMatrices load_expert(const CheckpointSource& source, int l, int e, int which = 7,
                           const std::vector<int64_t>* p = nullptr) {
  const ModelConfig& c = source.config();
  ExpertMatrices m{c.intermediate_size, c.hidden_size, {}, {}, {}};
  const int64_t h = m.hidden, inter = m.inter;
  // Rows permuted in place (row i becomes row p[i]), cycle by cycle with one
  // row of scratch: no second copy of a 235 MB Mixtral matrix.
  auto rows = [&](TensorRole role) {
    std::vector<float> w = to_f32(source, {role, l, e});
    if (!p) return w;
    std::vector<char> done(static_cast<size_t>(inter), 0);
    std::vector<float> first(static_cast<size_t>(h));
    for (int64_t start = 0; start < inter; ++start) {
      if (done[start]) continue;
      std::copy_n(&w[start * h], h, first.data());
      int64_t i = start;
      for (int64_t from = (*p)[i]; from != start; i = from, from = (*p)[i]) {
        std::copy_n(&w[from * h], h, &w[i * h]);
        done[i] = 1;
      }
      std::copy_n(first.data(), h, &w[i * h]);
      done[i] = 1;
    }
    return w;
  };
  if (which & 1) m.w1 = rows(TensorRole::ExpertW1);
  if (which & 4) m.w3 = rows(TensorRole::ExpertW3);
  if (which & 2) {
    m.w2 = to_f32(source, {TensorRole::ExpertW2, l, e});
    if (p) {
      std::vector<float> row(static_cast<size_t>(inter));
      for (int64_t k = 0; k < h; ++k) {
        float* w2 = &m.w2[k * inter];
        for (int64_t i = 0; i < inter; ++i) row[i] = w2[(*p)[i]];
        std::copy(row.begin(), row.end(), w2);
      }
    }
  }
  return m;
}

// C = A · Bᵀ in the CPU's best ISA (quant/gemm.h), all row-major.
void times_transposed(const float* a, int64_t m, int64_t k, const float* b, int64_t n, float* c) {
  gemm_f32(c, n, a, k, b, k, true, m, n, k);
}

// w2(silu(w1·x) ⊙ w3·x) for n rows of x, 512 rows at a time (the [rows,
// intermediate] products stay small at Mixtral's width).
std::vector<float> expert_forward(const ExpertMatrices& m, const std::vector<float>& x, int64_t n) {
  constexpr int64_t kChunk = 512;
  std::vector<float> y(static_cast<size_t>(n * m.hidden)), gate, up;
  for (int64_t t0 = 0; t0 < n; t0 += kChunk) {
    const int64_t rows = std::min(kChunk, n - t0);
    gate.resize(size_t(rows * m.inter));
    up.resize(gate.size());
    times_transposed(&x[t0 * m.hidden], rows, m.hidden, m.w1.data(), m.inter, gate.data());
    times_transposed(&x[t0 * m.hidden], rows, m.hidden, m.w3.data(), m.inter, up.data());
    silu_mul(gate.data(), up.data(), gate.size());
    times_transposed(gate.data(), rows, m.inter, m.w2.data(), m.hidden, &y[t0 * m.hidden]);
  }
  return y;
}

std::vector<double> member_weights(const ExpertGroup& g, const std::vector<double>& usage) {
  double total = 0;
  for (int64_t e : g.members) total += usage[e];
  std::vector<double> w;
  for (int64_t e : g.members) w.push_back(total > 0 ? usage[e] / total : 1.0 / double(g.members.size()));
  return w;
}

// The group's members averaged (usage-weighted, aligned to the dominant
// member when `align`), then pulled toward the dominant member:
// merged = dominant + blend · (average − dominant). blend = 1 is the plain
// average; blend = 0 keeps the dominant expert's weights (pruning the others
// while the router sends their tokens to it).
// Members come from `load` (the stored expert, neurons already permuted to
// the dominant's where aligned), one at a time and one matrix at a time, so
// a thread holds the merged expert and one member matrix, never the layer.
// `which`: the matrices to merge (1 w1, 2 w2, 4 w3); the others stay empty.
template <typename Load>
ExpertMatrices merge_group(Load&& load, const ExpertGroup& g, const std::vector<double>& usage, float blend,
                           int which = 7) {
  if (g.members.size() == 1) return load(g.members[0], which);
  auto weights = member_weights(g, usage);
  for (auto& w : weights) w *= blend;
  ExpertMatrices merged = load(g.dominant, which);
  float own = 1.0f - blend;  // the dominant's share: (1 − blend) + its average weight
  for (size_t i = 0; i < g.members.size(); ++i)
    if (g.members[i] == g.dominant) own += float(weights[i]);
  for (auto* v : {&merged.w1, &merged.w2, &merged.w3})
    for (float& x : *v) x *= own;
  for (size_t i = 0; i < g.members.size(); ++i) {
    const int64_t e = g.members[i];
    if (e == g.dominant) continue;
    const float w = float(weights[i]);
    for (int matrix : {1, 2, 4}) {  // w1, w2, w3 of the member, one at a time
      if (!(which & matrix)) continue;
      const ExpertMatrices member = load(e, matrix);
      const std::vector<float>& from = matrix == 1 ? member.w1 : matrix == 2 ? member.w2 : member.w3;
      std::vector<float>& to = matrix == 1 ? merged.w1 : matrix == 2 ? merged.w2 : merged.w3;
      for (size_t k = 0; k < to.size(); ++k) to[k] += w * from[k];
    }
  }
  return merged;
}

struct RouterChoice {
  std::vector<float> rows;  // [K, H]
  std::string kind;
  double error = 0;
};

// Router rows for the groups: members' average, or the least-squares fit of
// log Σ exp(member logits) on the sample (so a group's softmax mass is the
// sum of its members'). Singleton groups keep their row in both.
std::pair<std::vector<float>, std::vector<float>> router_candidates(const std::vector<float>& router,
                                                                    const std::vector<ExpertGroup>& groups,
                                                                    const std::vector<double>& usage,
                                                                    const std::vector<float>& sample, int64_t samples,
                                                                    int64_t h) {
  const int64_t experts = int64_t(router.size()) / h;
  std::vector<float> average(groups.size() * size_t(h)), summed(average.size());
  ConstMap x(sample.data(), samples, h), r(router.data(), experts, h);
  RowMatrix logits = x * r.transpose();  // [S, E]
  Eigen::MatrixXd gram = x.cast<double>().transpose() * x.cast<double>();
  gram.diagonal().array() += 1e-3 * gram.diagonal().mean() + 1e-12;
  Eigen::LDLT<Eigen::MatrixXd> solver(gram);
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& members = groups[g].members;
    auto w = member_weights(groups[g], usage);
    float* avg = &average[g * size_t(h)];
    float* fit = &summed[g * size_t(h)];
    for (size_t i = 0; i < members.size(); ++i)
      for (int64_t k = 0; k < h; ++k) avg[k] += float(w[i]) * router[members[i] * h + k];
    if (members.size() == 1) {
      std::copy_n(avg, h, fit);
      continue;
    }
    Eigen::VectorXd target(samples);
    for (int64_t t = 0; t < samples; ++t) {
      double m = -1e30, s = 0;
      for (int64_t e : members) m = std::max(m, double(logits(t, e)));
      for (int64_t e : members) s += std::exp(double(logits(t, e)) - m);
      target[t] = m + std::log(s);
    }
    Eigen::VectorXd row = solver.solve(x.cast<double>().transpose() * target);
    for (int64_t k = 0; k < h; ++k) fit[k] = float(row[k]);
  }
  return {average, summed};
}

// Squared error of the merged layer's output on the sample.
double merged_error(const LayerStats& stats, const std::vector<std::vector<float>>& outputs,
                    const std::vector<float>& rows, const std::vector<float>& sample) {
  LayerStats merged;
  merged.experts = int64_t(outputs.size());
  merged.hidden = stats.hidden;
  merged.samples = stats.samples;
  merged.top_k = std::min(stats.top_k, merged.experts);
  merged.normalize = stats.normalize;
  merged.outputs = outputs;
  merged.reference = stats.reference;
  merged.logits.resize(size_t(stats.samples * merged.experts));
  Eigen::Map<RowMatrix>(merged.logits.data(), stats.samples, merged.experts).noalias() =
      ConstMap(sample.data(), stats.samples, stats.hidden) * ConstMap(rows.data(), merged.experts, stats.hidden).transpose();
  std::vector<int64_t> all(static_cast<size_t>(merged.experts));
  for (int64_t e = 0; e < merged.experts; ++e) all[e] = e;
  return pruned_error(merged, all);
}

// Writes tensors in the order of expected_tensors() of the merged config.
class OutputWriter {
 public:
  OutputWriter(const CheckpointSource& source, const std::filesystem::path& out, const nlohmann::json& config,
               const ModelConfig& merged, const MergeOptions& o, const std::string& method)
      : source_(source), merged_(merged), arch_(*find_architecture(merged.model_type)) {
    if (out.extension() == ".h5") {
      Provenance p{o.command_line, std::filesystem::absolute(source.path()).string(), std::string(source.format()),
                   describe_files(source.files()), nullptr};
      p.quantization = {{"merge", {{"method", method}, {"experts", merged.num_experts}}}};
      container_ = std::make_unique<ContainerWriter>(out, o.overwrite, config, p);
      container_->write_tokenizers(source.tokenizer_files());
    } else {
      std::vector<TensorSpec> specs;
      for (const TensorKey& key : expected_tensors(merged)) specs.push_back({hf_name(arch_, key), dtype_of(key), expected_shape(merged, key)});
      HfWriteOptions options;
      options.overwrite = o.overwrite;
      hf_ = std::make_unique<HfStreamWriter>(out, options, config, source.tokenizer_files(), specs);
    }
  }

  // The stored dtype a tensor of the merged model gets: its source role's.
  DType dtype_of(const TensorKey& key) const {
    TensorKey source_key = key;
    if (source_key.expert >= 0) source_key.expert = 0;
    return *source_.info(source_key).dense_dtype();
  }

  void write(const TensorKey& key, std::span<const std::byte> bytes) {
    bytes_ += bytes.size();
    if (hf_) return hf_->write(hf_name(arch_, key), bytes);
    TensorInfo info{key, logical_name(key), hf_name(arch_, key), std::string(dtype_encoding(dtype_of(key))),
                    expected_shape(merged_, key), bytes.size(), {}, {}};
    container_->write_dense(info, info.stored_name, bytes);
  }
  void copy(const TensorKey& key) {
    const TensorData data = source_.read(key);
    write(key, data.bytes());
    data.release_pages();
  }
  void commit() {
    if (hf_) hf_->commit();
    if (container_) container_->commit();
  }
  uint64_t bytes() const { return bytes_; }

 private:
  const CheckpointSource& source_;
  const ModelConfig& merged_;
  const ArchitectureNames& arch_;
  std::unique_ptr<HfStreamWriter> hf_;
  std::unique_ptr<ContainerWriter> container_;
  uint64_t bytes_ = 0;
};

}  // namespace

MergeReport merge_model(const CheckpointSource& source, const std::filesystem::path& out, const MergeOptions& o,
                        ThreadPool& pool) {
  Stopwatch clock;
  const ModelConfig& c = source.config();
  if (!c.moe())
    fail("{}: a dense {} model has no experts to merge", source.path().string(), c.model_type);
  if (o.experts < 1 || o.experts > c.num_experts)
    fail("--experts {} must be between 1 and the model's {} experts", o.experts, c.num_experts);
  for (const TensorInfo& t : source.tensors())
    if (!t.dense_dtype()) fail("{}: tensor '{}' is quantized; merge a dense checkpoint", source.path().string(), t.name);
  Tokenizer tokenizer = Tokenizer::from_checkpoint(source);
  std::vector<int32_t> calib =
      calibration_windows(tokenizer.encode(read_text_file(o.calib)), o.calib_windows, o.ctx, o.seed);
  if (o.ctx > c.max_position_embeddings)
    fail("--ctx {} exceeds the model's max_position_embeddings {}", o.ctx, c.max_position_embeddings);
  const int64_t windows = int64_t(calib.size()) / o.ctx, n = windows * o.ctx, h = c.hidden_size;
  const int64_t k = o.experts, top_k = std::min(c.top_k, k);

  nlohmann::json config = source.config_json();
  config[find_architecture(c.model_type)->experts_key] = k;  // num_local_experts, num_experts, ...
  config["num_experts_per_tok"] = top_k;
  const ModelConfig merged_config = parse_model_config(config, "merged config");
  MergeReport report;
  report.method = std::string(merge_method_name(o.method));
  report.experts_before = c.num_experts;
  report.experts_after = k;
  for (const TensorInfo& t : source.tensors()) report.params_before += t.numel();
  for (const TensorKey& key : expected_tensors(merged_config))
    report.params_after += shape_numel(expected_shape(merged_config, key));

  OutputWriter writer(source, out, config, merged_config, o, report.method);
  Model model(source, pool);
  writer.copy({TensorRole::Embed});
  std::vector<float> x, normed, logits, reference;
  model.embed(calib, x);
  const int64_t stride = std::max<int64_t>(1, n / std::max<int64_t>(1, o.sample_tokens));
  const int64_t samples = (n + stride - 1) / stride;
  const bool align = o.method == MergeMethod::MergeAligned || o.method == MergeMethod::MergeCluster;

  for (int l = 0; l < c.num_layers; ++l) {
    for (int64_t w0 = 0; w0 < windows; w0 += kWindowBatch) {
      KvCache cache(1, std::min(kWindowBatch, windows - w0), o.ctx, c.num_kv_heads * c.head_dim);
      model.attention_layer(l, &x[w0 * o.ctx * h], o.ctx, cache, 0);
    }
    if (!c.moe_layer(l)) {  // a dense layer among MoE layers (Qwen's mlp_only_layers): copied, run as it is
      normed.resize(x.size());
      rms_norm(x.data(), n, h, model.moe_norm(l).data(), float(c.rms_norm_eps), normed.data());
      for (int64_t t0 = 0; t0 < n; t0 += kWindowBatch * o.ctx)
        model.dense_mlp(l, &normed[t0 * h], std::min(kWindowBatch * o.ctx, n - t0), &x[t0 * h]);
      for (const TensorKey& key : expected_tensors(merged_config))
        if (key.layer == l) writer.copy(key);
      if (o.progress) o.progress(l, c.num_layers);
      continue;
    }
    // Statistics: usage over all tokens; logits, outputs on the sample.
    LayerStats stats;
    stats.experts = c.num_experts;
    stats.hidden = h;
    stats.samples = samples;
    stats.top_k = c.top_k;
    stats.normalize = c.norm_topk_prob;
    stats.usage.assign(size_t(c.num_experts), 0.0);
    normed.resize(x.size());
    rms_norm(x.data(), n, h, model.moe_norm(l).data(), float(c.rms_norm_eps), normed.data());
    Routing routing;
    route_tokens(pool, model.moe_weights(l).router, c.top_k, normed.data(), n, routing, logits, c.norm_topk_prob);
    for (int32_t e : routing.chosen) stats.usage[e] += 1.0 / double(routing.chosen.size());
    std::vector<float> sample(static_cast<size_t>(samples * h));
    for (int64_t s = 0; s < samples; ++s) std::copy_n(&normed[s * stride * h], h, &sample[s * h]);
    const std::vector<float> router = to_f32(source, {TensorRole::Router, l});
    stats.logits.resize(size_t(samples * c.num_experts));
    Eigen::Map<RowMatrix>(stats.logits.data(), samples, c.num_experts).noalias() =
        ConstMap(sample.data(), samples, h) * ConstMap(router.data(), c.num_experts, h).transpose();
    // Every expert's output on the sample, one expert in f32 per thread at a time.
    stats.outputs.resize(size_t(c.num_experts));
    pool.parallel_for(size_t(c.num_experts), [&](size_t e, int) {
      stats.outputs[e] = expert_forward(load_expert(source, l, int(e)), sample, samples);
    });
    // The full layer's output on the sample, through the same routing rule.
    std::vector<int64_t> all_experts(static_cast<size_t>(c.num_experts));
    for (int64_t e = 0; e < c.num_experts; ++e) all_experts[e] = e;
    stats.reference = routed_output(stats, all_experts);  // the full layer, same routing rule

    // Plan; then merge and pick the router: every blend toward the dominant
    // expert (pruning methods: none) with either router rewrite, scored by
    // the layer's output error on the sample.
    std::vector<ExpertGroup> groups = plan_groups(o.method, stats, k);
    const bool all_single =
        std::all_of(groups.begin(), groups.end(), [](const auto& g) { return g.members.size() == 1; });
    double ref_norm = 0;
    for (float v : stats.reference) ref_norm += double(v) * v;
    // Each member's neurons matched to its group's dominant expert, once;
    // the permutations are applied whenever the member is loaded.
    std::vector<std::vector<int64_t>> permutation(static_cast<size_t>(c.num_experts));
    if (align)
      for (const auto& g : groups) {
        std::vector<int64_t> members;
        for (int64_t e : g.members)
          if (e != g.dominant) members.push_back(e);
        if (members.empty()) continue;
        const ExpertMatrices dominant = load_expert(source, l, int(g.dominant));
        if (dominant.inter > kExactAlignmentLimit) {  // wide: one member at a time, its GEMMs on every thread
          for (int64_t e : members) permutation[e] = align_neurons(dominant, load_expert(source, l, int(e)), &pool);
          continue;
        }
        pool.parallel_for(members.size(), [&](size_t i, int) {
          permutation[members[i]] = align_neurons(dominant, load_expert(source, l, int(members[i])));
        });
      }
    auto load = [&](int64_t e, int which) {
      return load_expert(source, l, int(e), which, permutation[e].empty() ? nullptr : &permutation[e]);
    };
    RouterChoice choice;
    float chosen_blend = 0;
    choice.error = std::numeric_limits<double>::infinity();
    const std::vector<float> blends = all_single ? std::vector<float>{1.0f} : std::vector<float>{1.0f, 0.5f, 0.25f, 0.0f};
    // The router rows do not depend on the blend.
    auto [average, summed] = router_candidates(router, groups, stats.usage, sample, samples, h);
    std::vector<float> dominant(groups.size() * size_t(h));
    for (size_t g = 0; g < groups.size(); ++g)
      std::copy_n(&router[groups[g].dominant * h], h, &dominant[g * size_t(h)]);
    for (float blend : blends) {
      // Only the candidates' outputs on the sample are kept, not their weights.
      std::vector<std::vector<float>> outputs(groups.size());
      pool.parallel_for(groups.size(), [&](size_t g, int) {
        outputs[g] = expert_forward(merge_group(load, groups[g], stats.usage, blend), sample, samples);
      });
      RouterChoice options[] = {
          {average, all_single ? "kept" : "average", 0}, {summed, "summed-mass", 0}, {dominant, "dominant", 0}};
      for (auto& option : options) {
        if (all_single && option.kind != "kept") continue;
        option.error = merged_error(stats, outputs, option.rows, sample);
        if (option.error < choice.error) {
          choice = option;
          chosen_blend = blend;
        }
      }
    }
    if (!std::isfinite(choice.error) || !std::isfinite(ref_norm))
      fail("{}: layer {}: the experts' outputs are not finite on the calibration tokens (NaN or Inf weights?)",
           source.path().string(), l);
    MergeLayerReport layer{l, {}, choice.kind, std::sqrt(choice.error / ref_norm), chosen_blend};
    for (const auto& g : groups) layer.groups.push_back(g.members);

    // The chosen merge, rebuilt group by group and kept only in the stored
    // dtype: what is written, and what the next layer's inputs run through
    // (the merged model's own numbers, not f32 ones it will never have).
    const DType expert_dtype = writer.dtype_of({TensorRole::ExpertW1, l, 0});
    std::vector<std::array<std::vector<std::byte>, 3>> merged(groups.size());  // w1, w2, w3
    // One matrix at a time: a thread holds one merged matrix in f32 (235 MB
    // at Mixtral's width) rather than the expert's three, beside the layer's
    // stored merges (1.4 GB): the peak of the whole command otherwise.
    pool.parallel_for(groups.size(), [&](size_t g, int) {
      merged[g][0] = to_dtype(merge_group(load, groups[g], stats.usage, chosen_blend, 1).w1, expert_dtype);
      merged[g][1] = to_dtype(merge_group(load, groups[g], stats.usage, chosen_blend, 2).w2, expert_dtype);
      merged[g][2] = to_dtype(merge_group(load, groups[g], stats.usage, chosen_blend, 4).w3, expert_dtype);
    });

    // Propagate the calibration stream through the merged layer.
    MoeWeights weights;
    weights.router = f32_view(choice.rows.data(), k, h);
    weights.normalize = c.norm_topk_prob;
    const int64_t inter = c.intermediate_size;
    auto stored = [&](const std::vector<std::byte>& bytes, int64_t rows, int64_t cols) {
      WeightView w;
      w.dtype = expert_dtype;
      w.data = bytes.data();
      w.rows = rows;
      w.cols = cols;
      return w;
    };
    for (const auto& m : merged)
      weights.experts.push_back({stored(m[0], inter, h), stored(m[1], h, inter), stored(m[2], inter, h)});
    weights.shared = model.moe_weights(l).shared;  // a shared expert is kept as it is
    weights.shared_gate = model.moe_weights(l).shared_gate;
    MoeBlock block;
    std::vector<float> out_batch;
    for (int64_t t0 = 0; t0 < n; t0 += kWindowBatch * o.ctx) {
      const int64_t m = std::min(kWindowBatch * o.ctx, n - t0);
      out_batch.assign(size_t(m * h), 0.0f);
      block.forward(pool, weights, top_k, &normed[t0 * h], m, out_batch.data(), nullptr);
      for (int64_t i = 0; i < m * h; ++i) x[t0 * h + i] += out_batch[i];
    }

    // Write the layer in the merged model's tensor order: the router and
    // experts merged, everything else (attention, norms, biases, a shared
    // expert) copied.
    for (const TensorKey& key : expected_tensors(merged_config)) {
      if (key.layer != l) continue;
      const DType dtype = writer.dtype_of(key);
      switch (key.role) {
        case TensorRole::Router: writer.write(key, to_dtype(choice.rows, dtype)); break;
        case TensorRole::ExpertW1: writer.write(key, merged[size_t(key.expert)][0]); break;
        case TensorRole::ExpertW2: writer.write(key, merged[size_t(key.expert)][1]); break;
        case TensorRole::ExpertW3: writer.write(key, merged[size_t(key.expert)][2]); break;
        default: writer.copy(key);
      }
    }
    report.layers.push_back(std::move(layer));
    if (o.progress) o.progress(l, c.num_layers);
  }
  writer.copy({TensorRole::FinalNorm});
  if (!c.tie_word_embeddings) writer.copy({TensorRole::LmHead});
  writer.commit();
  report.bytes_written = writer.bytes();
  report.seconds = clock.seconds();
  report.peak_rss = peak_rss_bytes();
  return report;
}

nlohmann::ordered_json to_json(const MergeReport& r) {
  nlohmann::ordered_json j{{"method", r.method},          {"experts_before", r.experts_before},
                           {"experts_after", r.experts_after}, {"params_before", r.params_before},
                           {"params_after", r.params_after},   {"tensor_bytes", r.bytes_written},
                           {"seconds", r.seconds},             {"peak_rss_bytes", r.peak_rss}};
  for (const auto& l : r.layers)
    j["layers"].push_back({{"layer", l.layer},
                           {"groups", l.groups},
                           {"router", l.router},
                           {"blend", l.blend},
                           {"relative_error", l.relative_error}});
  return j;
}

std::string to_text(const MergeReport& r) {
  std::string out = fmt::format("{}: {} -> {} experts per layer; parameters {} -> {} ({:.1f}%)\n", r.method,
                                r.experts_before, r.experts_after, r.params_before, r.params_after,
                                100.0 * double(r.params_after) / double(r.params_before));
  for (const auto& l : r.layers) {
    std::string groups;
    for (const auto& g : l.groups) groups += fmt::format(" [{}]", fmt::join(g, ","));
    out += fmt::format("  layer {}: rel. error {:.4f}, router {}, blend {:.2f},{}\n", l.layer, l.relative_error,
                       l.router, l.blend, groups);
  }
  out += fmt::format("  time {:.2f} s, peak memory {:.1f} MiB\n", r.seconds, double(r.peak_rss) / (1 << 20));
  return out;
}

}  // namespace moec
