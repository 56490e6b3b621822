#include "bench/kernel_bench.h"

#include <algorithm>
#include <deque>
#include <map>
#include <random>

#include <fmt/format.h>

#include "io/checkpoint.h"
#include "io/cpu_isa.h"
#include "io/error.h"
#include "io/process_stats.h"
#include "model/linear.h"
#include "model/sub1_plane_cache.h"
#include "model/thread_pool.h"
#include "quant/sub1_kernels.h"

#if defined(MOEC_HAVE_CUDA)
#include "quant/cuda/bf16_convert.h"
#include "quant/cuda/sub1_gpu_timing.h"
#endif

namespace moec {
namespace {

constexpr int64_t kBatches[] = {1, 8, 32};
constexpr int64_t kCachedMaxTokens = kSub1FusedMaxTokens;  // linear()'s fused-kernel limit

// One shape's matrices in three storages: sub1 and its exact values as dense
// bf16 (rounded) and f32.
struct Case {
  std::string name;
  int64_t rows = 0, cols = 0;
  std::vector<Sub1View> sub1;
  std::vector<std::vector<uint16_t>> bf16;
  std::vector<std::vector<float>> f32;
  double stored_bytes = 0;
  double zeros = 0;
};

void add_dense(Case& c, const Sub1View& v) {
  std::vector<float> w(static_cast<size_t>(v.rows * v.cols));
  dequantize_sub1_rows(v, 0, v.rows, w.data());
  std::vector<uint16_t> b(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    b[i] = f32_to_bf16(w[i]);
    c.zeros += w[i] == 0.0f;
  }
  c.f32.push_back(std::move(w));
  c.bf16.push_back(std::move(b));
}

// Median over 5 runs of the time per call, each run repeating fn until it
// lasts min_seconds / 5.
template <typename Fn>
double seconds_per_call(Fn&& fn, double min_seconds) {
  fn();
  Stopwatch probe;
  fn();
  const double once = std::max(probe.seconds(), 1e-7);
  const int reps = std::max(1, int(min_seconds / 5 / once));
  std::vector<double> runs;
  for (int r = 0; r < 5; ++r) {
    Stopwatch clock;
    for (int i = 0; i < reps; ++i) fn();
    runs.push_back(clock.seconds() / reps);
  }
  std::sort(runs.begin(), runs.end());
  return runs[2];
}

nlohmann::ordered_json measure(const Case& c, ThreadPool& pool, double min_seconds) {
  const double weights = double(c.rows * c.cols) * double(c.sub1.size());
  nlohmann::ordered_json j;
  j["name"] = c.name;
  j["shape"] = {c.rows, c.cols};
  j["tensors"] = c.sub1.size();
  j["zero_fraction"] = c.zeros / weights;
  j["bits_per_weight"] = 8.0 * c.stored_bytes / weights;
  j["isa"] = isa_name(active_isa());

  std::vector<float> rows(static_cast<size_t>(kSub1BlockRows * c.cols));
  const double reference = seconds_per_call([&] {
    for (const auto& v : c.sub1)
      for (int64_t b = 0; b < v.n_blocks(); ++b) dequantize_sub1_rows(v, b * kSub1BlockRows, v.rows_in_block(b), rows.data());
  }, min_seconds);
  const double kernel = seconds_per_call([&] {
    for (const auto& v : c.sub1)
      pool.parallel_for(size_t(v.n_blocks()), [&](size_t b, int) {
        thread_local std::vector<float> out;
        out.resize(size_t(kSub1BlockRows * v.cols));
        sub1_dequantize_block(v, int64_t(b), out.data());
      });
  }, min_seconds);
  j["decode_reference_weights_per_s_1_thread"] = weights / reference;
  j["decode_kernel_weights_per_s"] = weights / kernel;

  Sub1PlaneCache plane_cache(uint64_t(4) << 30);
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0, 1);
  for (int64_t tokens : kBatches) {
    std::vector<float> x(static_cast<size_t>(tokens * c.cols)), y(static_cast<size_t>(tokens * c.rows));
    for (auto& v : x) v = d(rng);
    auto time = [&](auto view_of) {
      std::vector<LinearProblem> problems;
      for (size_t i = 0; i < c.sub1.size(); ++i) problems.push_back({x.data(), c.cols, tokens, view_of(i), y.data(), c.rows});
      return seconds_per_call([&] { linear(pool, problems); }, min_seconds);
    };
    const double sub1 = time([&](size_t i) { return sub1_weights(c.sub1[i]); });
    const double bf16 = time([&](size_t i) {
      WeightView w;
      w.dtype = DType::BF16;
      w.data = reinterpret_cast<const std::byte*>(c.bf16[i].data());
      w.rows = c.rows;
      w.cols = c.cols;
      return w;
    });
    const double f32 = time([&](size_t i) { return f32_view(c.f32[i].data(), c.rows, c.cols); });
    // The same products replayed from the expert plane cache (what generation
    // runs on a cache hit; the first call records the planes).
    // Only small batches use it (linear() runs larger ones as GEMMs).
    nlohmann::ordered_json b{{"tokens", tokens},           {"sub1_ms", 1e3 * sub1},
                             {"bf16_ms", 1e3 * bf16},      {"f32_ms", 1e3 * f32},
                             {"speedup_vs_bf16", bf16 / sub1}, {"speedup_vs_f32", f32 / sub1}};
    if (tokens <= kCachedMaxTokens) {
      const double cached = time([&](size_t i) {
        WeightView w = sub1_weights(c.sub1[i]);
        w.plane_cache = &plane_cache;
        return w;
      });
      b["sub1_cached_ms"] = 1e3 * cached;
      b["cached_speedup_vs_bf16"] = bf16 / cached;
    }
    j["batches"].push_back(b);
  }
#if defined(MOEC_HAVE_CUDA)
  if (c.sub1.size() == 1 && cuda::device_count() > 0) {
    const cuda::GpuKernelTimes g = cuda::time_sub1_on_gpu(c.sub1[0]);
    j["gpu"] = {{"device", g.device},
                {"sub1_matvec_ms", g.sub1_matvec_ms},
                {"sub1_matvec_bf16_activations_ms", g.sub1_matvec_bf16_ms},
                {"cublas_bf16_gemv_ms", g.cublas_bf16_gemv_ms},
                {"sub1_batch16_ms", g.sub1_batch16_ms},
                {"sub1_16_matvecs_ms", g.sub1_16_matvecs_ms},
                {"cublas_bf16_batch16_ms", g.cublas_bf16_batch16_ms}};
  }
#endif
  return j;
}

Case synthetic_case(int64_t rows, int64_t cols, double p0, uint32_t seed, std::deque<Sub1Matrix>& owned) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<uint8_t> trits(static_cast<size_t>(rows * cols));
  for (auto& t : trits) {
    const double v = u(rng);
    t = v < p0 ? 1 : (v < p0 + (1 - p0) / 2 ? 0 : 2);
  }
  std::vector<uint8_t> levels(static_cast<size_t>(2 * rows));
  for (auto& l : levels) l = uint8_t(200 + rng() % 56);
  owned.push_back(encode_sub1(trits, rows, cols, levels, 0.05f, shared_dictionary(count_trits(trits))));
  Case c;
  c.name = fmt::format("synthetic p(0)={}", p0);
  c.rows = rows;
  c.cols = cols;
  c.sub1.push_back(owned.back().view());
  c.stored_bytes = double(owned.back().bytes());
  add_dense(c, c.sub1.back());
  return c;
}

// The ISAs to measure: every one this CPU runs, or the one named.
std::vector<Isa> isas_to_measure(const std::string& name) {
  if (name == "all") return supported_isas();
  const auto isa = isa_from_name(name);
  if (!isa) fail("--isa {}: unknown instruction set (all, portable, avx2, avx512)", name);
  if (!isa_supported(*isa)) fail("--isa {}: this CPU does not support it (best here: {})", name, isa_name(best_isa()));
  return {*isa};
}

}  // namespace

nlohmann::ordered_json run_kernel_bench(const KernelBenchOptions& o) {
  const std::vector<Isa> isas = isas_to_measure(o.isa);
  ThreadPool pool(o.threads);
  nlohmann::ordered_json j;
  j["threads"] = pool.size();
  std::deque<Sub1Matrix> owned;  // the cases' views point into these
  std::vector<Case> cases;
  if (o.synthetic)
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{14336, 4096}, {4096, 14336}})
      cases.push_back(synthetic_case(rows, cols, 0.885, uint32_t(rows), owned));
  std::unique_ptr<CheckpointSource> source;  // the model's views point into its mapping
  std::deque<TensorData> data;
  if (!o.model.empty()) {
    source = open_checkpoint(o.model);
    std::map<std::pair<int64_t, int64_t>, Case> by_shape;
    for (const TensorInfo& t : source->tensors()) {
      if (t.encoding != "sub1") continue;
      data.push_back(source->read(t.key));
      Case& c = by_shape[{t.shape[0], t.shape[1]}];
      c.name = fmt::format("{} experts", o.model.filename().string());
      c.rows = t.shape[0];
      c.cols = t.shape[1];
      c.sub1.push_back(sub1_view(data.back()));
      c.stored_bytes += double(t.nbytes);
      add_dense(c, c.sub1.back());
    }
    if (by_shape.empty()) fail("{}: no sub1 tensors (quantize with --bits ternary --code sub1)", o.model.string());
    for (auto& [shape, c] : by_shape) cases.push_back(std::move(c));
  }
  const Isa active = active_isa();
  for (Isa isa : isas) {
    set_active_isa(isa);
    for (const Case& c : cases) j["cases"].push_back(measure(c, pool, o.min_seconds));
  }
  set_active_isa(active);
  j["peak_rss_bytes"] = peak_rss_bytes();
  return j;
}

std::string format_kernel_bench(const nlohmann::ordered_json& j) {
  std::string out = fmt::format("sub1 kernels vs dense products of the same shape ({} threads, medians)\n",
                                j["threads"].get<int>());
  for (const auto& c : j["cases"]) {
    out += fmt::format("\n{} [{} x {}] x {} tensors, {:.1f}% zeros, kernels {}\n", c["name"].get<std::string>(),
                       c["shape"][0].get<int64_t>(), c["shape"][1].get<int64_t>(), c["tensors"].get<int>(),
                       100 * c["zero_fraction"].get<double>(), c["isa"].get<std::string>());
    out += fmt::format("  bits per weight, every stored byte: {:.3f}\n", c["bits_per_weight"].get<double>());
    out += fmt::format("  decode: reference {:.0f} Mweights/s (1 thread), kernel {:.0f} Mweights/s\n",
                       c["decode_reference_weights_per_s_1_thread"].get<double>() / 1e6,
                       c["decode_kernel_weights_per_s"].get<double>() / 1e6);
    out += fmt::format("  {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12} {:>10}\n", "tokens", "sub1 ms", "bf16 ms",
                       "f32 ms", "vs bf16", "vs f32", "cached ms", "vs bf16");
    for (const auto& b : c["batches"]) {
      out += fmt::format("  {:>7} {:>10.3f} {:>10.3f} {:>10.3f} {:>9.2f}x {:>9.2f}x", b["tokens"].get<int64_t>(),
                         b["sub1_ms"].get<double>(), b["bf16_ms"].get<double>(), b["f32_ms"].get<double>(),
                         b["speedup_vs_bf16"].get<double>(), b["speedup_vs_f32"].get<double>());
      if (b.contains("sub1_cached_ms"))
        out += fmt::format(" {:>12.3f} {:>9.2f}x\n", b["sub1_cached_ms"].get<double>(),
                           b["cached_speedup_vs_bf16"].get<double>());
      else
        out += fmt::format(" {:>12} {:>10}\n", "-", "-");
    }
    if (c.contains("gpu")) {
      const auto& g = c["gpu"];
      out += fmt::format("  GPU {}: sub1 matvec {:.4f} ms (bf16 x {:.4f}), cuBLAS bf16 GEMV {:.4f} ms ({:.2f}x)\n",
                         g["device"].get<std::string>(), g["sub1_matvec_ms"].get<double>(),
                         g["sub1_matvec_bf16_activations_ms"].get<double>(), g["cublas_bf16_gemv_ms"].get<double>(),
                         g["cublas_bf16_gemv_ms"].get<double>() / g["sub1_matvec_ms"].get<double>());
      out += fmt::format("      batch 16 {:.4f} ms vs 16 matvecs {:.4f} ms ({:.1f}x); cuBLAS bf16 batch 16 {:.4f} ms\n",
                         g["sub1_batch16_ms"].get<double>(), g["sub1_16_matvecs_ms"].get<double>(),
                         g["sub1_16_matvecs_ms"].get<double>() / g["sub1_batch16_ms"].get<double>(),
                         g["cublas_bf16_batch16_ms"].get<double>());
    }
  }
  return out;
}

}  // namespace moec
