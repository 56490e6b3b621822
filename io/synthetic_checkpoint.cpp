#include "io/synthetic_checkpoint.h"

#include <atomic>
#include <cmath>
#include <thread>

#include "io/dtype.h"
#include "io/error.h"
#include "io/hf_checkpoint.h"
#include "io/model_config.h"
#include "io/tensor_names.h"

namespace moec {

namespace fs = std::filesystem;

namespace {

struct Shape {
  const char* name;
  int64_t hidden, intermediate, heads, kv_heads, experts, top_k, vocab, layers, max_positions;
};

// Mixtral 8x7B and 8x22B as published (their config.json); "mini" keeps the
// structure at a size a test can afford.
constexpr Shape kShapes[] = {
    {"mixtral-8x7b", 4096, 14336, 32, 8, 8, 2, 32000, 32, 32768},
    {"mixtral-8x22b", 6144, 16384, 48, 8, 8, 2, 32768, 56, 65536},
    {"mini", 512, 1792, 8, 2, 8, 2, 32000, 2, 4096},
};

const Shape& find_shape(const std::string& name) {
  for (const Shape& s : kShapes)
    if (name == s.name) return s;
  fail("synth: shape '{}' unknown (known: {})", name, synthetic_shapes());
}

// splitmix64: a tiny generator with good 64-bit output; one per chunk.
struct SplitMix {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double((next() >> 11) + 1) * 0x1.0p-53; }  // (0, 1]
};

constexpr size_t kChunk = size_t{1} << 20;

// Fills out (bf16) with N(0, std²) by Box–Muller, chunk by chunk across threads.
void fill_normal_bf16(std::vector<uint16_t>& out, double std, uint64_t seed, uint64_t tensor, int threads) {
  const size_t chunks = (out.size() + kChunk - 1) / kChunk;
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t c; (c = next.fetch_add(1)) < chunks;) {
      SplitMix rng{seed * 0x100000001b3ull ^ (tensor << 32) ^ c};
      const size_t end = std::min(out.size(), (c + 1) * kChunk);
      for (size_t i = c * kChunk; i < end; i += 2) {
        const double r = std * std::sqrt(-2.0 * std::log(rng.uniform())), a = 6.283185307179586 * rng.uniform();
        out[i] = f32_to_bf16(float(r * std::cos(a)));
        if (i + 1 < end) out[i + 1] = f32_to_bf16(float(r * std::sin(a)));
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

}  // namespace

std::string synthetic_shapes() {
  std::string names;
  for (const Shape& s : kShapes) names += (names.empty() ? "" : ", ") + std::string(s.name);
  return names;
}

nlohmann::json synthetic_config(const std::string& shape, int layers) {
  const Shape& s = find_shape(shape);
  if (layers < 0 || layers > s.layers) fail("synth: --layers {}: expected 0..{} for {}", layers, s.layers, s.name);
  return {{"architectures", {"MixtralForCausalLM"}},
          {"model_type", "mixtral"},
          {"vocab_size", s.vocab},
          {"hidden_size", s.hidden},
          {"intermediate_size", s.intermediate},
          {"num_hidden_layers", layers == 0 ? s.layers : layers},
          {"num_attention_heads", s.heads},
          {"num_key_value_heads", s.kv_heads},
          {"num_local_experts", s.experts},
          {"num_experts_per_tok", s.top_k},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 1e6},
          {"max_position_embeddings", s.max_positions},
          {"hidden_act", "silu"},
          {"tie_word_embeddings", false},
          {"bos_token_id", 1},
          {"eos_token_id", 2},
          {"sliding_window", nullptr},
          {"initializer_range", 0.02},
          {"torch_dtype", "bfloat16"},
          {"moec_synthetic", {{"shape", s.name}, {"weights", "N(0, 0.02^2), norms 1"}}}};
}

HfWriteResult write_synthetic_checkpoint(const fs::path& out_dir, const SyntheticOptions& o) {
  const nlohmann::json config_json = synthetic_config(o.shape, o.layers);
  const ModelConfig config = parse_model_config(config_json, out_dir.string());
  TokenizerFiles tokenizer;
  if (!o.tokenizer.empty()) {
    auto bytes = read_tokenizer_file(o.tokenizer);
    if (!bytes) fail("synth: --tokenizer {}: no such file", o.tokenizer.string());
    (o.tokenizer.extension() == ".json" ? tokenizer.json : tokenizer.model) = std::move(bytes);
  }
  const ArchitectureNames& arch = *find_architecture("mixtral");
  const std::vector<TensorKey> keys = expected_tensors(config);
  std::vector<TensorSpec> specs;
  for (const TensorKey& key : keys) specs.push_back({hf_name(arch, key), DType::BF16, expected_shape(config, key)});
  HfStreamWriter writer(out_dir, o.write, config_json, tokenizer, specs);
  const int threads = o.threads > 0 ? o.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<uint16_t> values;
  for (size_t i = 0; i < keys.size(); ++i) {
    values.resize(size_t(specs[i].nbytes() / 2));
    if (specs[i].shape.size() == 1)
      std::fill(values.begin(), values.end(), f32_to_bf16(1.0f));  // RMSNorm weights
    else
      fill_normal_bf16(values, 0.02, o.seed, i, threads);
    writer.write(specs[i].name, std::as_bytes(std::span(values)));
  }
  return writer.commit();
}

}  // namespace moec
