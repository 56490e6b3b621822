// Dense Mistral/Llama decoders (one SwiGLU MLP per layer): the runtime runs
// them as Hugging Face does, and every stage either handles them or refuses
// them in one line.
#include <catch2/catch.hpp>

#include <cmath>

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

TEST_CASE("dense Mistral: the student's loss equals the float64 reference", "[model][dense]") {
  const fs::path dir = test::fixtures_dir() / "tiny-mistral-student";
  const fs::path ref = test::fixtures_dir() / "reference" / "tiny-mistral-student.grad.h5";
  if (!fs::exists(dir / "config.json") || !fs::exists(ref)) {
    WARN("tiny-mistral-student and its reference need ../shared/fixtures; skipped");
    return;
  }
  auto source = open_checkpoint(dir);
  CHECK(source->config().model_type == "mistral");
  CHECK_FALSE(source->config().moe());
  // The reference's ids: the first 2 x 128 tokens of the validation split, no BOS.
  auto ids = Tokenizer::from_checkpoint(*source).encode(read_text_file(test::text_file("validation")));
  const auto want_ids = test::read_reference_ints(ref, "ids");
  REQUIRE(want_ids.values.size() == 256);
  REQUIRE(std::vector<int32_t>(ids.begin(), ids.begin() + 256) == want_ids.values);
  ThreadPool pool(2);
  Model model(*source, pool);
  PerplexityOptions o;
  o.ctx = 128;
  o.max_windows = 2;
  const PerplexityResult r = evaluate_perplexity(model, ids, o);
  CHECK(r.windows == 2);
  const double want = test::read_reference_floats(ref, "loss").values.at(0);  // float64 stored, read as float
  CHECK(std::abs(r.mean_nll / want - 1) < 1e-5);
  // inspect counts the dense MLP apart from experts.
  auto inspect = test::run_moec("inspect '" + dir.string() + "'");
  CHECK(inspect.exit_code == 0);
  CHECK(inspect.out.find("mlp            dense, width 1024") != std::string::npos);
  CHECK(inspect.out.find("0 in experts") != std::string::npos);
}

TEST_CASE("dense Llama/Mistral: convert and export round trip, merge refuses", "[model][dense]") {
  test::TempDir tmp;
  for (const char* type : {"llama", "mistral"}) {
    INFO(type);
    const nlohmann::json config = test::tiny_dense_config(type);
    const fs::path hf = tmp / (std::string(type) + "-hf"), h5 = tmp / (std::string(type) + ".h5"),
                   back = tmp / (std::string(type) + "-back");
    test::write_tiny_checkpoint(hf, config);
    auto source = open_checkpoint(hf);
    REQUIRE(source->config().num_experts == 0);
    CHECK(source->tensors().size() == 1 + 2 * 9 + 2);  // embed, 9 per layer, norm, lm_head
    REQUIRE(test::run_moec("convert '" + hf.string() + "' -o '" + h5.string() + "'").exit_code == 0);
    REQUIRE(test::run_moec("export '" + h5.string() + "' -o '" + back.string() + "'").exit_code == 0);
    CHECK(test::read_file(back / "model.safetensors") == test::read_file(hf / "model.safetensors"));
    // The same hidden states from the folder and the container.
    ThreadPool pool(1);
    auto container = open_checkpoint(h5);
    Model a(*source, pool), b(*container, pool);
    const std::vector<int32_t> tokens = {1, 5, 9, 30, 2, 7};
    KvCache ca = a.make_cache(1, 16), cb = b.make_cache(1, 16);
    const std::vector<float> ha = a.forward(tokens, 6, ca), hb = b.forward(tokens, 6, cb);
    CHECK(ha == hb);
    for (float v : ha) REQUIRE(std::isfinite(v));
    // Merging says why it cannot work on it (quantizing a dense model: see
    // distill_test.cpp, which quantizes a distilled student).
    auto m = test::run_moec("merge '" + hf.string() + "' -o '" + (tmp / "m.h5").string() + "' --experts 1 --calib '" +
                            test::text_file("validation").string() + "'");
    CHECK(m.exit_code == 1);
    CHECK(m.err.find("no experts") != std::string::npos);
  }
}

TEST_CASE("sliding_window: a query sees only the last `window` positions, as Hugging Face masks them", "[model][dense]") {
  test::TempDir tmp;
  nlohmann::json config = test::tiny_dense_config();
  config["num_hidden_layers"] = 1;
  test::write_tiny_checkpoint(tmp / "full", config);
  config["sliding_window"] = 3;
  test::write_tiny_checkpoint(tmp / "windowed", config);
  auto full_source = open_checkpoint(tmp / "full"), windowed_source = open_checkpoint(tmp / "windowed");
  ThreadPool pool(1);
  Model full(*full_source, pool), windowed(*windowed_source, pool);
  const int64_t h = full.config().hidden_size;
  const std::vector<int32_t> tokens = {3, 17, 5, 9, 30, 2, 11};
  auto last_hidden = [&](Model& m, std::span<const int32_t> ids) {
    KvCache cache = m.make_cache(1, 16);
    const auto& hidden = m.forward(ids, int64_t(ids.size()), cache);
    return std::vector<float>(hidden.end() - h, hidden.end());
  };
  // One layer: keys and values depend only on their own token and rotary
  // position, and scores only on relative positions, so the last token with
  // a window of 3 reads like the last 3 tokens alone.
  const auto windowed_last = last_hidden(windowed, tokens);
  const auto last_three = last_hidden(full, std::span(tokens).last(3));
  const auto unwindowed = last_hidden(full, tokens);
  float diff = 0, differs = 0;
  for (int64_t i = 0; i < h; ++i) {
    diff = std::max(diff, std::abs(windowed_last[i] - last_three[i]));
    differs = std::max(differs, std::abs(windowed_last[i] - unwindowed[i]));
  }
  CHECK(diff < 1e-5f);
  CHECK(differs > 1e-4f);  // the window changes the result
  CHECK(diff < differs / 10);
  // Positions inside the window: no change at all.
  CHECK(last_hidden(windowed, std::span(tokens).first(3)) == last_hidden(full, std::span(tokens).first(3)));
}
