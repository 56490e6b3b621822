#include <catch2/catch.hpp>

#include "io/checkpoint.h"
#include "io/summary.h"
#include "model/forward_cost.h"
#include "tests/arch_fixtures.h"
#include "tests/test_paths.h"

using namespace moec;

namespace {

// What the weight products of one token multiply, counted from the stored
// tensors instead of the config: the active parameters less what a token
// does not multiply (norm weights, biases, and the input embedding, a row
// lookup, unless lm_head is tied to it).
double multiplied_params(const CheckpointSource& source) {
  const CheckpointSummary s = summarize(source);
  const ModelConfig& c = s.config;
  double p = double(s.params_active) - double(s.components[size_t(Component::Norms)].params);
  if (c.attention_bias) p -= double(c.num_layers * (c.num_heads + 2 * c.num_kv_heads) * c.head_dim);
  if (!c.tie_word_embeddings) p -= double(s.components[size_t(Component::Embedding)].params);
  return p;
}

}  // namespace

TEST_CASE("a token's weight products are the active parameters it multiplies", "[runtime]") {
  auto mixtral = open_checkpoint(test::fixture_model_dir());
  const ForwardCost m = forward_cost(mixtral->config(), 256);
  CHECK(m.linear_macs == 4'857'856);  // 5,908,736 active − 1,048,576 embedding − 2,304 norm weights
  CHECK(m.linear_macs == multiplied_params(*mixtral));
  // The config's count equals the stored tensors' on Qwen2-MoE (shared
  // expert and gate, a dense layer, biases), Qwen3-MoE (tied lm_head, q/k
  // norms, explicit head_dim) and OLMoE (whole-projection q/k norms); each is
  // skipped, with a warning, without ../shared/fixtures/arch.
  for (const auto& [name, dir] : test::arch_fixtures()) {
    INFO(name);
    auto source = open_checkpoint(dir);
    CHECK(forward_cost(source->config(), 256).linear_macs == multiplied_params(*source));
  }
  // A dense model (no experts: every layer one SwiGLU MLP), written here.
  test::TempDir tmp;
  test::write_tiny_checkpoint(tmp / "dense", test::tiny_dense_config());
  auto dense = open_checkpoint(tmp / "dense");
  REQUIRE_FALSE(dense->config().moe());
  CHECK(forward_cost(dense->config(), 256).linear_macs == multiplied_params(*dense));
}

TEST_CASE("attention's cost is the keys each position sees, causal and windowed", "[runtime]") {
  ModelConfig c = open_checkpoint(test::fixture_model_dir())->config();
  // 4 layers × (q·kᵀ and scores·v) × 8 heads × 32 × the mean of 1..256 keys.
  CHECK(forward_cost(c, 256).attention_macs == 4 * 2 * 256 * 128.5);
  CHECK(forward_cost(c, 1).attention_macs == 4 * 2 * 256 * 1.0);
  c.sliding_window = 64;  // positions past 64 see 64 keys: (Σ 1..64 + 192 · 64) / 256
  CHECK(forward_cost(c, 256).attention_macs == Approx(4 * 2 * 256 * (2080.0 + 192 * 64) / 256));
  c.window_layers = {true, false, false, false};  // the window in layer 0 only
  CHECK(forward_cost(c, 256).attention_macs == Approx(2 * 256 * ((2080.0 + 192 * 64) / 256 + 3 * 128.5)));
  CHECK(forward_cost(c, 256).flops() == 2 * (forward_cost(c, 256).linear_macs + forward_cost(c, 256).attention_macs));
}
