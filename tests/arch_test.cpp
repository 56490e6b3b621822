// Architectures beyond Mixtral against the references of
// ../shared/fixtures/arch/ (README there): logits and hidden states within
// 1e-3, the same experts in the same order, perplexity within 0.05%.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/text_file.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/perplexity.h"
#include "model/thread_pool.h"
#include "model/tokenizer.h"
#include "tests/reference.h"
#include "tests/arch_fixtures.h"
#include "tests/greedy_check.h"
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
    if (!c.moe_layer(l)) {  // the reference writes -1 for a dense layer's "experts"
      CHECK(std::all_of(want.begin(), want.end(), [](int32_t e) { return e == -1; }));
      CHECK(trace.routing[size_t(l)].chosen.empty());
      continue;
    }
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

TEST_CASE("Qwen2-MoE (shared expert with sigmoid gate, q/k/v biases, a dense layer, raw top-k) matches its reference",
          "[model][arch]") {
  check_against_reference("tiny-qwen2moe");
  const fs::path dir = test::fixtures_dir() / "arch" / "tiny-qwen2moe";
  if (!fs::exists(dir / "config.json")) return;
  const ModelConfig c = open_checkpoint(dir)->config();
  CHECK(c.attention_bias);
  CHECK(c.shared_expert_size == 384);
  CHECK(c.dense_intermediate_size == 512);
  CHECK(c.moe_layer(0));
  CHECK_FALSE(c.moe_layer(1));
  // inspect counts the routed experts apart from the shared expert and the dense layer.
  auto r = test::run_moec("inspect '" + dir.string() + "' --json");
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["params_total"] == 3659264);
  CHECK(j["params_experts"] == 1769472);
  CHECK(j["params_active_per_token"] == 2332160);
  CHECK(j["components"]["shared_experts"]["params"] == 3 * (3 * 384 * 128 + 128));  // 3 MoE layers
  CHECK(j["components"]["mlp"]["params"] == 3 * 512 * 128);                         // the dense layer
  // --keep-shared: the shared experts stay bf16, the routed ones are quantized.
  test::TempDir tmp;
  auto q = test::run_moec("quantize '" + dir.string() + "' -o '" + (tmp / "k.h5").string() + "' --bits 4 --calib '" +
                          test::text_file("train").string() + "' --calib-windows 4 --ctx 64 --keep-shared");
  INFO(q.err);
  REQUIRE(q.exit_code == 0);
  const auto kept = open_checkpoint(tmp / "k.h5");
  for (const TensorInfo& t : kept->tensors()) {
    INFO(t.name);
    if (component_of(t.key.role) == Component::SharedExperts) CHECK(t.dense_dtype() == DType::BF16);
    if (component_of(t.key.role) == Component::Experts) CHECK(t.encoded());
  }
}

TEST_CASE("unknown architectures are refused in one line naming the supported ones", "[model][arch]") {
  test::TempDir tmp;
  nlohmann::json config = test::tiny_config();
  config["model_type"] = "deepseek_v3";
  test::write_file(tmp / "config.json", config.dump());
  auto r = test::run_moec("inspect '" + tmp.path().string() + "'");
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("qwen2_moe") != std::string::npos);
  CHECK(r.err.find("deepseek_v3") != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

TEST_CASE("every stage runs on every architecture: convert/export round trip, quantize, merge", "[model][arch][stages]") {
  for (const auto& [name, dir] : test::arch_fixtures()) {
    INFO(name);
    test::TempDir tmp;
    const std::string text = test::text_file("validation").string(), calib = test::text_file("train").string();
    auto ppl = [&](const fs::path& model) {
      auto r = test::run_moec("eval '" + model.string() + "' --text '" + text + "' --ctx 64 --max-windows 16 --json");
      INFO(r.err);
      REQUIRE(r.exit_code == 0);
      return nlohmann::json::parse(r.out)["ppl"].get<double>();
    };
    const double original = ppl(dir);
    // Lossless container and back: the same bytes.
    REQUIRE(test::run_moec("convert '" + dir.string() + "' -o '" + (tmp / "m.h5").string() + "'").exit_code == 0);
    REQUIRE(test::run_moec("export '" + (tmp / "m.h5").string() + "' -o '" + (tmp / "back").string() + "'").exit_code == 0);
    {  // every tensor byte for byte (the file's tensor order is moec's, not the source's)
      auto a = open_checkpoint(dir), b = open_checkpoint(tmp / "back");
      REQUIRE(a->tensors().size() == b->tensors().size());
      for (const TensorInfo& t : a->tensors()) {
        INFO(t.name);
        const TensorData x = a->read(t.key), y = b->read(t.key);
        CHECK(std::equal(x.bytes().begin(), x.bytes().end(), y.bytes().begin(), y.bytes().end()));
      }
    }
    CHECK(ppl(tmp / "m.h5") == original);
    // 4-bit GPTQ experts (and dense-layer MLPs): a small loss.
    auto q = test::run_moec("quantize '" + dir.string() + "' -o '" + (tmp / "q4.h5").string() + "' --bits 4 --calib '" +
                            calib + "' --calib-windows 8 --ctx 64");
    INFO(q.err);
    REQUIRE(q.exit_code == 0);
    const double quantized = ppl(tmp / "q4.h5");
    CHECK(quantized > original * 0.98);
    CHECK(quantized < original * 1.10);
    // Every MLP matrix is quantized: routed experts, dense layers, shared experts.
    const auto q4 = open_checkpoint(tmp / "q4.h5");
    for (const TensorInfo& t : q4->tensors()) {
      const Component part = component_of(t.key.role);
      INFO(t.name);
      CHECK(t.encoded() == (part == Component::Experts || part == Component::Mlp ||
                            (part == Component::SharedExperts && t.key.role != TensorRole::SharedGate)));
    }
    // export --dequantize: a plain bf16 folder that evaluates like the container.
    REQUIRE(test::run_moec("export '" + (tmp / "q4.h5").string() + "' -o '" + (tmp / "q4-hf").string() + "' --dequantize")
                .exit_code == 0);
    const auto q4_hf = open_checkpoint(tmp / "q4-hf");
    for (const TensorInfo& t : q4_hf->tensors()) CHECK(t.dense_dtype() == DType::BF16);
    CHECK(ppl(tmp / "q4-hf") == Approx(quantized).epsilon(1e-3));
    // Ternary: GPTQ beats round-to-nearest (given enough calibration tokens
    // per expert: with 8 windows of 64, GPTQ on Qwen2-MoE's experts of ~128
    // tokens each is worse than RTN); sub1 (QMoE's settings) close to packed.
    auto ternary = [&](const std::string& name, const std::string& flags) {
      auto r = test::run_moec("quantize '" + dir.string() + "' -o '" + (tmp / name).string() + "' --bits ternary --calib '" +
                              calib + "' --calib-windows 32 --ctx 64 " + flags);
      INFO(r.err);
      REQUIRE(r.exit_code == 0);
      return ppl(tmp / name);
    };
    const double gptq = ternary("t.h5", ""), rtn = ternary("rtn.h5", "--method rtn"), sub1 = ternary("s.h5", "--code sub1");
    CHECK(gptq < rtn);
    CHECK(sub1 == Approx(gptq).epsilon(0.02));
    CHECK(sub1 < rtn);
    // Half the experts: a real, smaller checkpoint that runs (shared experts,
    // biases, q/k norms and dense layers carried over).
    const int64_t experts = open_checkpoint(dir)->config().num_experts;
    auto m = test::run_moec("merge '" + dir.string() + "' -o '" + (tmp / "merged").string() + "' --experts " +
                            std::to_string(experts / 2) + " --calib '" + calib + "' --calib-windows 8 --ctx 64");
    INFO(m.err);
    REQUIRE(m.exit_code == 0);
    auto merged = open_checkpoint(tmp / "merged");
    CHECK(merged->config().num_experts == experts / 2);
    const double merged_ppl = ppl(tmp / "merged");
    CHECK(std::isfinite(merged_ppl));
    CHECK(merged_ppl > original);
  }
}

TEST_CASE("every architecture generates with the KV cache exactly as full forward passes do; distill refuses what a "
          "Mistral student cannot hold", "[model][arch][stages]") {
  for (const auto& [name, dir] : test::arch_fixtures()) {
    INFO(name);
    auto source = open_checkpoint(dir);
    ThreadPool pool(2);
    Model model(*source, pool);
    const std::vector<int32_t> prompt = Tokenizer::from_checkpoint(*source).encode_prompt("The jury said", source->config().bos_token_id);
    GenerateOptions options;
    options.max_new_tokens = 10;
    const GenerateResult r = generate(model, prompt, options);
    REQUIRE(r.tokens.size() == 10);
    // Biases, q/k norms and the cache agree with cache-free forward passes.
    CHECK(test::first_greedy_mismatch(model, prompt, r.tokens) == -1);
    // The CLI too.
    auto g = test::run_moec("generate '" + dir.string() + "' --prompt 'The jury said' -n 10");
    INFO(g.err);
    CHECK(g.exit_code == 0);
    CHECK(g.out.find("The jury said") != std::string::npos);
    // A Mistral student has no q/k norms, biases or shared experts: refused in one line, no output.
    test::TempDir tmp;
    auto d = test::run_moec("distill '" + dir.string() + "' -o '" + (tmp / "s").string() + "' --width 64 --calib '" +
                            test::text_file("train").string() + "' --calib-windows 4 --ctx 64");
    CHECK(d.exit_code == 1);
    CHECK(d.err.find("Mistral student cannot hold") != std::string::npos);
    CHECK(std::count(d.err.begin(), d.err.end(), '\n') == 1);
    CHECK_FALSE(fs::exists(tmp / "s"));
  }
}
