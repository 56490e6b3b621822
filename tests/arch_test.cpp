// Architectures beyond Mixtral against the references of
// ../shared/fixtures/arch/ (README there): logits and hidden states within
// 1e-3, the same experts in the same order, perplexity within 0.05%.
#include <catch2/catch.hpp>

#include <cmath>

#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/text_file.h"
#include "model/model.h"
#include "model/perplexity.h"
#include "model/thread_pool.h"
#include "model/tokenizer.h"
#include "tests/reference.h"
#include "tests/test_paths.h"

using namespace moec;
namespace fs = std::filesystem;

namespace {

void check_against_reference(const std::string& name) {
  const fs::path dir = test::fixtures_dir() / "arch" / name;
  const fs::path ref = test::fixtures_dir() / "arch" / "reference" / (name + ".h5");
  const fs::path ppl_ref = test::fixtures_dir() / "arch" / "reference" / (name + ".brown-test.json");
  if (!fs::exists(dir / "config.json") || !fs::exists(ref)) {
    WARN(name << " and its reference need ../shared/fixtures/arch; skipped");
    return;
  }
  const auto prompt = test::read_reference_ints(ref, "prompt_ids").values;
  const auto logits_ref = test::read_reference_floats(ref, "logits");
  const auto hidden_ref = test::read_reference_floats(ref, "hidden");
  const auto experts_ref = test::read_reference_ints(ref, "experts");
  const int64_t T = int64_t(prompt.size());
  auto source = open_checkpoint(dir);
  ThreadPool pool(2);
  Model model(*source, pool);
  const ModelConfig& c = model.config();
  const int64_t H = c.hidden_size, V = c.vocab_size, L = c.num_layers, K = c.top_k;
  KvCache cache = model.make_cache(1, T);
  ForwardTrace trace;
  trace.keep_hidden = true;
  const auto& final_hidden = model.forward(prompt, T, cache, &trace);
  std::vector<float> logits(size_t(T * V));
  model.logits(final_hidden.data(), T, logits.data());
  REQUIRE(trace.hidden.size() == size_t(L + 1));
  for (int64_t l = 0; l <= L; ++l) {
    INFO("hidden state " << l);
    CHECK(test::max_abs_diff(trace.hidden[size_t(l)].data(), &hidden_ref.values[size_t(l * T * H)], size_t(T * H)) < 1e-3f);
  }
  CHECK(test::max_abs_diff(logits.data(), logits_ref.values.data(), logits.size()) < 1e-3f);
  for (int64_t l = 0; l < L; ++l) {
    INFO("layer " << l);
    const std::vector<int32_t> want(experts_ref.values.begin() + l * T * K, experts_ref.values.begin() + (l + 1) * T * K);
    CHECK(trace.routing[size_t(l)].chosen == want);
  }
  // Perplexity of the first 64 windows of the Brown test split.
  const auto expected = nlohmann::json::parse(test::read_file(ppl_ref));
  const auto ids = Tokenizer::from_checkpoint(*source).encode(read_text_file(test::text_file("test")));
  PerplexityOptions o;
  o.ctx = expected["ctx"];
  o.max_windows = expected["max_windows"];
  const PerplexityResult r = evaluate_perplexity(model, ids, o);
  CHECK(r.scored == expected["scored_tokens"].get<int64_t>());
  CHECK(std::abs(r.ppl / expected["ppl"].get<double>() - 1) < 5e-4);
}

}  // namespace

TEST_CASE("Qwen3-MoE (per-head q/k norms, head_dim 48, 16 experts top-4, tied embeddings) matches its reference",
          "[model][arch]") {
  check_against_reference("tiny-qwen3moe");
}

TEST_CASE("OLMoE (q/k norms over whole projections, raw top-k weights) matches its reference", "[model][arch]") {
  check_against_reference("tiny-olmoe");
}

TEST_CASE("architectures not supported yet are refused in one line naming the supported ones", "[model][arch]") {
  for (const char* name : {"tiny-qwen2moe"}) {
    const fs::path dir = test::fixtures_dir() / "arch" / name;
    if (!fs::exists(dir / "config.json")) continue;
    auto r = test::run_moec("inspect '" + dir.string() + "'");
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("qwen3_moe") != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
}
