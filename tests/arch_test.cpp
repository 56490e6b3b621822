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

namespace {

// A tiny Qwen3-MoE config of test::tiny_config()'s sizes (2 layers).
nlohmann::json tiny_qwen3_config() {
  nlohmann::json c = test::tiny_config();
  c["model_type"] = "qwen3_moe";
  c["num_experts"] = c["num_local_experts"];
  c.erase("num_local_experts");
  c["moe_intermediate_size"] = c["intermediate_size"];
  return c;
}

std::vector<int64_t> windows_of(const nlohmann::json& config) {
  const ModelConfig c = parse_model_config(config, "test config");
  std::vector<int64_t> w;
  for (int64_t l = 0; l < c.num_layers; ++l) w.push_back(c.attention_window(l));
  return w;
}

}  // namespace

// A tiny Qwen2-MoE config of the same sizes, with a small shared expert.
nlohmann::json tiny_qwen2_config() {
  nlohmann::json c = tiny_qwen3_config();
  c["model_type"] = "qwen2_moe";
  c["shared_expert_intermediate_size"] = 8;
  return c;
}

TEST_CASE("sliding_window is read as each family's Hugging Face code reads it", "[model][arch]") {
  nlohmann::json q = tiny_qwen2_config();  // Qwen2-MoE: layer_types, else layers from max_window_layers on
  q["num_hidden_layers"] = 3;
  q["sliding_window"] = 4;
  CHECK(windows_of(q) == std::vector<int64_t>{0, 0, 0});  // no use_sliding_window, no window
  q["use_sliding_window"] = true;
  CHECK(windows_of(q) == std::vector<int64_t>{0, 0, 0});  // max_window_layers defaults to 28
  q["max_window_layers"] = 1;
  CHECK(windows_of(q) == std::vector<int64_t>{0, 4, 4});
  q["max_window_layers"] = 0;
  CHECK(windows_of(q) == std::vector<int64_t>{4, 4, 4});
  q.erase("sliding_window");
  CHECK(windows_of(q) == std::vector<int64_t>{4096, 4096, 4096});  // Qwen2MoeConfig's default window
  q["sliding_window"] = 4;
  q["layer_types"] = {"sliding_attention", "full_attention", "sliding_attention"};  // authoritative
  CHECK(windows_of(q) == std::vector<int64_t>{4, 0, 4});
  q["layer_types"] = {"sliding_attention", "full_attention"};
  CHECK_THROWS_WITH(parse_model_config(q, "c"), Catch::Contains("'layer_types' must list the type of each of the 3"));
  q["use_sliding_window"] = false;
  CHECK(windows_of(q) == std::vector<int64_t>{0, 0, 0});

  nlohmann::json q3 = tiny_qwen3_config();  // Qwen3-MoE: every layer, with use_sliding_window only
  q3["sliding_window"] = 4;
  q3["max_window_layers"] = 1;  // not read by Qwen3-MoE
  CHECK(windows_of(q3) == std::vector<int64_t>{0, 0});
  q3["use_sliding_window"] = true;
  CHECK(windows_of(q3) == std::vector<int64_t>{4, 4});

  nlohmann::json m = test::tiny_config();  // Mixtral: every layer; no key, no window
  CHECK(windows_of(m) == std::vector<int64_t>{0, 0});
  m["sliding_window"] = 4;
  m["max_window_layers"] = 1;  // not a Mixtral key
  CHECK(windows_of(m) == std::vector<int64_t>{4, 4});
  nlohmann::json d = test::tiny_config();  // Mistral: MistralConfig's 4096 when the key is missing
  d["model_type"] = "mistral";
  CHECK(windows_of(d) == std::vector<int64_t>{4096, 4096});
  d["sliding_window"] = nullptr;
  CHECK(windows_of(d) == std::vector<int64_t>{0, 0});
  nlohmann::json o = tiny_qwen3_config();  // OLMoE's attention has no window at all
  o["model_type"] = "olmoe";
  o["intermediate_size"] = o["moe_intermediate_size"];
  o["sliding_window"] = 4;
  o["use_sliding_window"] = true;
  o["max_window_layers"] = 0;
  CHECK(windows_of(o) == std::vector<int64_t>{0, 0});
}

TEST_CASE("Qwen2-MoE's window reaches only the layers it names: logits equal the unwindowed model's where no layer "
          "is windowed and differ per windowed layer", "[model][arch]") {
  test::TempDir tmp;
  nlohmann::json config = tiny_qwen2_config();
  test::write_tiny_checkpoint(tmp / "none", config);  // the same weights in every folder
  config["sliding_window"] = 2;
  config["use_sliding_window"] = true;
  auto write = [&](const std::string& name, const nlohmann::json& edit) {
    nlohmann::json c = config;
    c.update(edit);
    test::write_tiny_checkpoint(tmp / name, c);
  };
  write("past_last", {{"max_window_layers", 2}});
  write("all", {{"max_window_layers", 0}});
  write("second", {{"max_window_layers", 1}});
  write("second_by_type", {{"layer_types", {"full_attention", "sliding_attention"}}});
  const std::vector<int32_t> tokens = {3, 17, 5, 9, 30, 2, 11, 8};
  auto logits = [&](const std::string& name) {
    auto source = open_checkpoint(tmp / name);
    ThreadPool pool(1);
    Model model(*source, pool);
    KvCache cache = model.make_cache(1, 16);
    const auto& hidden = model.forward(tokens, int64_t(tokens.size()), cache);
    std::vector<float> out(tokens.size() * size_t(model.config().vocab_size));
    model.logits(hidden.data(), int64_t(tokens.size()), out.data());
    return out;
  };
  const auto none = logits("none"), all = logits("all"), second = logits("second");
  CHECK(logits("past_last") == none);
  CHECK(logits("second_by_type") == second);
  CHECK(all != none);
  CHECK(second != none);
  CHECK(second != all);
  // Within the window (the first 2 tokens) nothing changes.
  const size_t v = size_t(test::tiny_config()["vocab_size"].get<int64_t>());
  CHECK(std::equal(all.begin(), all.begin() + ptrdiff_t(2 * v), none.begin()));
}

TEST_CASE("config keys a config.json leaves out take the family's Hugging Face defaults", "[model][arch]") {
  struct Family {
    nlohmann::json config;
    int64_t kv_heads, top_k;
  };
  // Head counts that are multiples of the defaults but differ from them, so
  // "missing = the head count" would fail.
  nlohmann::json qwen2 = tiny_qwen2_config();
  qwen2["num_attention_heads"] = 32;
  qwen2["hidden_size"] = 64;
  nlohmann::json olmoe = tiny_qwen3_config();
  olmoe["model_type"] = "olmoe";
  olmoe["intermediate_size"] = olmoe["moe_intermediate_size"];
  nlohmann::json qwen3 = tiny_qwen3_config();
  qwen3["num_attention_heads"] = 8;
  nlohmann::json mixtral = test::tiny_config();
  mixtral["num_attention_heads"] = 16;
  mixtral["hidden_size"] = 32;
  for (auto& [config, kv_heads, top_k] : std::vector<Family>{
           {mixtral, 8, 2}, {qwen2, 16, 4}, {qwen3, 4, 8}, {olmoe, 4 /* = heads */, 8}}) {
    INFO(config["model_type"]);
    config["num_experts"] = 16;
    config["num_local_experts"] = 16;
    config.erase("num_key_value_heads");
    config.erase("num_experts_per_tok");
    const ModelConfig c = parse_model_config(config, "c");
    CHECK(c.num_kv_heads == kv_heads);
    CHECK(c.top_k == top_k);
    config["num_key_value_heads"] = nullptr;  // null: the number of heads
    CHECK(parse_model_config(config, "c").num_kv_heads == config["num_attention_heads"].get<int64_t>());
  }
  nlohmann::json c = test::tiny_config();
  c["rope_scaling"] = {{"rope_type", "default"}};  // Hugging Face's "no scaling"
  CHECK_NOTHROW(parse_model_config(c, "c"));
  c["rope_scaling"] = {{"type", "default"}};
  CHECK_NOTHROW(parse_model_config(c, "c"));
  c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
  CHECK_THROWS_WITH(parse_model_config(c, "c"), Catch::Contains("rope_scaling") && Catch::Contains("not supported"));
  c["rope_scaling"] = {{"rope_type", "default"}, {"type", "linear"}, {"factor", 2.0}};  // `type` wins in transformers
  CHECK_THROWS_WITH(parse_model_config(c, "c"), Catch::Contains("not supported"));
  c.erase("rope_scaling");
  c.erase("rope_theta");  // transformers 5: theta inside rope_parameters
  c["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 123456.0}};
  CHECK(parse_model_config(c, "c").rope_theta == 123456.0);
  c["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 123456.0}, {"factor", 4.0}};
  CHECK_THROWS_WITH(parse_model_config(c, "c"), Catch::Contains("rope_parameters") && Catch::Contains("not supported"));
  nlohmann::json q = tiny_qwen3_config();
  q["intermediate_size"] = 24;
  q["mlp_only_layers"] = {1, 7};  // 7 is past the last layer: matches none, as in Hugging Face's code
  const ModelConfig qc = parse_model_config(q, "c");
  CHECK(qc.moe_layer(0));
  CHECK_FALSE(qc.moe_layer(1));
  q["mlp_only_layers"] = {-1};
  CHECK_THROWS_WITH(parse_model_config(q, "c"), Catch::Contains("'mlp_only_layers' entry -1"));
}

TEST_CASE("tensors Hugging Face's loader skips are skipped: rotary inv_freq buffers, a tied model's stored lm_head",
          "[model][arch]") {
  test::TempDir tmp;
  nlohmann::json config = test::tiny_config();
  config["tie_word_embeddings"] = true;
  test::write_tiny_checkpoint(tmp / "plain", config);
  test::write_tiny_checkpoint(tmp / "extra", config, [&](std::vector<test::TinyTensor>& t) {
    t.push_back({"model.layers.1.self_attn.rotary_emb.inv_freq", "F32", {2}});
    t.push_back({"lm_head.weight", "BF16", {32, 16}});  // written after the others: its values differ from the embedding's
  });
  test::write_tiny_checkpoint(tmp / "int_head", config, [&](std::vector<test::TinyTensor>& t) {
    t.push_back({"lm_head.weight", "I32", {32, 16}});  // never read, so its dtype does not matter
  });
  CHECK_NOTHROW(open_checkpoint(tmp / "int_head"));
  auto plain = open_checkpoint(tmp / "plain");
  auto extra = open_checkpoint(tmp / "extra");
  CHECK(extra->tensors().size() == plain->tensors().size());
  ThreadPool pool(1);
  Model a(*plain, pool), b(*extra, pool);
  const std::vector<int32_t> tokens = {3, 17, 5, 9};
  auto logits = [&](Model& m) {
    KvCache cache = m.make_cache(1, 8);
    const auto& hidden = m.forward(tokens, 4, cache);
    std::vector<float> out(4 * 32);
    m.logits(hidden.data(), 4, out.data());
    return out;
  };
  CHECK(logits(a) == logits(b));  // the tied embedding, not the stored lm_head
  // An unknown name is still refused.
  test::write_tiny_checkpoint(tmp / "unknown", config, [&](std::vector<test::TinyTensor>& t) {
    t.push_back({"model.layers.1.self_attn.rotary_emb.cos_cached", "F32", {2}});
  });
  CHECK_THROWS_WITH(open_checkpoint(tmp / "unknown"), Catch::Contains("rotary_emb.cos_cached") &&
                                                          Catch::Contains("not a mixtral tensor name"));
}
