#include <catch2/catch.hpp>

#include <cmath>

#include "io/checkpoint.h"
#include "io/convert.h"
#include "io/error.h"
#include "io/text_file.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/perplexity.h"
#include "model/sampler.h"
#include "model/thread_pool.h"
#include "model/tokenizer.h"
#include "tests/greedy_check.h"
#include "tests/reference.h"
#include "tests/test_paths.h"

using namespace moec;
namespace fs = std::filesystem;

namespace {


std::vector<int32_t> test_ids(const CheckpointSource& source) {
  return Tokenizer::from_checkpoint(source).encode(read_text_file(test::text_file("test")));
}

}  // namespace

TEST_CASE("the tokenizer reproduces the reference ids of the test split", "[runtime]") {
  auto source = open_checkpoint(test::fixture_model_dir());
  auto ids = test_ids(*source);
  CHECK(ids.size() == 143618);
  fs::path ref = test::reference_h5();
  if (!ref.empty()) CHECK(ids == test::read_reference_ints(ref, "eval_ids").values);
  Tokenizer tokenizer = Tokenizer::from_checkpoint(*source);
  CHECK(tokenizer.bos_id() == 1);
  CHECK(tokenizer.eos_id() == 2);
  CHECK(tokenizer.vocab_size() == 4096);
  CHECK(tokenizer.decode(tokenizer.encode("The jury said it did find")) == "The jury said it did find");
  // Encoding in pieces gives the same ids as one piece.
  std::string text = read_text_file(test::text_file("test"));
  CHECK(tokenizer.encode(text, 4096) == tokenizer.encode(text, text.size()));
  CHECK(tokenizer.encode(text, 1) == ids);
}

TEST_CASE("perplexity of the test split equals the reference within 0.05%", "[runtime][slow]") {
  auto source = open_checkpoint(test::fixture_model_dir());
  auto ids = test_ids(*source);
  ThreadPool pool(0);
  Model model(*source, pool);
  PerplexityResult r = evaluate_perplexity(model, ids, {});
  CHECK(r.windows == 561);
  CHECK(r.scored == 143055);
  double want = 114.57557935890647;
  fs::path ref = test::reference_h5();
  if (!ref.empty()) want = test::read_reference_attribute(ref, "ppl");
  CHECK(std::abs(r.ppl / want - 1) < 5e-4);
}

TEST_CASE("perplexity is identical from a container and for any thread count", "[runtime]") {
  test::TempDir tmp;
  auto hf = open_checkpoint(test::fixture_model_dir());
  convert_to_container(*hf, tmp / "m.h5", false, "test");
  auto h5 = open_checkpoint(tmp / "m.h5");
  auto ids = test_ids(*hf);
  PerplexityOptions options;
  options.max_windows = 6;
  options.batch_windows = 4;
  std::vector<double> ppl;
  for (auto* source : {hf.get(), h5.get()})
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      Model model(*source, pool);
      ppl.push_back(evaluate_perplexity(model, ids, options).ppl);
    }
  for (double p : ppl) CHECK(p == ppl[0]);
  // Batching windows together changes nothing either (up to float rounding).
  ThreadPool pool(2);
  Model model(*hf, pool);
  options.batch_windows = 1;
  CHECK(std::abs(evaluate_perplexity(model, ids, options).ppl / ppl[0] - 1) < 1e-5);
}

TEST_CASE("decoding with the KV cache equals re-running the whole sequence", "[runtime]") {
  auto source = open_checkpoint(test::fixture_model_dir());
  ThreadPool pool(2);
  Model model(*source, pool);
  Tokenizer tokenizer = Tokenizer::from_checkpoint(*source);
  std::vector<int32_t> prompt{1};
  for (int32_t id : tokenizer.encode("The Fulton County Grand Jury said Friday")) prompt.push_back(id);
  GenerateOptions options;
  options.max_new_tokens = 12;
  GenerateResult r = generate(model, prompt, options);
  REQUIRE(r.tokens.size() == 12);
  // Greedy: each generated token is the argmax of a fresh full forward pass.
  CHECK(test::first_greedy_mismatch(model, prompt, r.tokens) == -1);
}

TEST_CASE("sampling: greedy, seeded, nucleus", "[runtime]") {
  std::vector<float> logits{0.0f, std::log(3.0f), -1e9f};
  Sampler greedy({0.0f, 1.0f, 0});
  CHECK(greedy.sample(logits) == 1);
  Sampler a({1.0f, 1.0f, 42}), b({1.0f, 1.0f, 42});
  int ones = 0;
  for (int i = 0; i < 20000; ++i) {
    int32_t x = a.sample(logits);
    REQUIRE(x == b.sample(logits));
    REQUIRE(x != 2);
    ones += x == 1;
  }
  CHECK(std::abs(ones / 20000.0 - 0.75) < 0.02);
  Sampler nucleus({1.0f, 0.5f, 1});  // 0.75 of the mass is in token 1 alone
  for (int i = 0; i < 100; ++i) REQUIRE(nucleus.sample(logits) == 1);
  CHECK_THROWS_AS(Sampler({1.0f, 0.0f, 0}), Error);
  CHECK_THROWS_AS(Sampler({-1.0f, 1.0f, 0}), Error);
}

TEST_CASE("bad runtime input gets a clear error", "[runtime][malformed]") {
  auto source = open_checkpoint(test::fixture_model_dir());
  ThreadPool pool(1);
  Model model(*source, pool);
  std::vector<int32_t> ids(300, 5);
  auto eval_error = [&](std::span<const int32_t> text, int64_t ctx, const char* phrase) {
    PerplexityOptions o;
    o.ctx = ctx;
    CHECK_THROWS_WITH(evaluate_perplexity(model, text, o), Catch::Contains(phrase));
  };
  eval_error({}, 256, "the text is empty");
  eval_error(std::span(ids).first(100), 256, "the text has 100 tokens, fewer than one window of --ctx 256");
  eval_error(ids, 0, "--ctx must be at least 2");
  eval_error(ids, 1, "--ctx must be at least 2");
  eval_error(ids, 4096, "exceeds the model's max_position_embeddings 1024");
  std::vector<int32_t> long_prompt(1025, 5);
  CHECK_THROWS_WITH(generate(model, long_prompt, {}), Catch::Contains("more than the model's max_position_embeddings"));
  CHECK_THROWS_WITH(generate(model, {}, {}), Catch::Contains("the prompt is empty"));
  std::vector<int32_t> bad_token{1, 99999};
  CHECK_THROWS_WITH(generate(model, bad_token, {}), Catch::Contains("token id 99999 is outside the vocabulary"));
}

TEST_CASE("moec eval and generate report bad input in one line", "[runtime][cli]") {
  test::TempDir tmp;
  const std::string model = fmt::format("'{}'", test::fixture_model_dir().string());
  test::write_file(tmp / "empty.txt", "");
  test::write_file(tmp / "short.txt", "Too short for a window.");
  for (std::string args : {"eval " + model + " --text '" + (tmp / "empty.txt").string() + "'",
                           "eval " + model + " --text '" + (tmp / "short.txt").string() + "'",
                           "eval " + model + " --text '" + (tmp / "none.txt").string() + "'",
                           "eval " + model + " --text '" + test::text_file("test").string() + "' --ctx 1",
                           "generate " + model + " --prompt hello --top-p 0"}) {
    auto r = test::run_moec(args);
    INFO(args << "\n" << r.err);
    CHECK(r.exit_code != 0);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
  auto ok = test::run_moec("eval " + model + " --text '" + test::text_file("test").string() + "' --max-windows 2 --json");
  REQUIRE(ok.exit_code == 0);
  auto j = nlohmann::json::parse(ok.out);
  CHECK(j["scored_tokens"] == 510);
  // Memory: the 29 MiB model plus activations run in about 100 MiB. A library
  // or buffer that maps far more shows here (linking cuBLAS did: +150 MiB).
  CHECK(j["peak_rss_bytes"].get<double>() < 160.0 * (1 << 20));
  auto gen = test::run_moec("generate " + model + " --prompt 'The jury' -n 8");
  REQUIRE(gen.exit_code == 0);
  CHECK_THAT(gen.out, Catch::StartsWith("The jury"));
  CHECK_THAT(gen.err, Catch::Contains("8 tokens generated"));
}
