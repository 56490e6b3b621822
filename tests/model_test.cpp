#include <catch2/catch.hpp>

#include <cmath>

#include "io/checkpoint.h"
#include "model/model.h"
#include "model/thread_pool.h"
#include "model/tokenizer.h"
#include "tests/reference.h"
#include "tests/test_paths.h"

using namespace moec;
namespace fs = std::filesystem;

TEST_CASE("forward pass matches the PyTorch reference", "[model]") {
  fs::path ref = test::reference_h5();
  if (ref.empty()) {
    WARN("reference numbers need ../shared/fixtures; skipped");
    return;
  }
  auto prompt = test::read_reference_ints(ref, "prompt_ids").values;
  auto logits_ref = test::read_reference_floats(ref, "logits");
  auto hidden_ref = test::read_reference_floats(ref, "hidden");
  auto experts_ref = test::read_reference_ints(ref, "experts");
  const int64_t T = int64_t(prompt.size());

  auto source = open_checkpoint(test::fixture_model_dir());
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    Model model(*source, pool);
    const int64_t H = model.config().hidden_size, V = model.config().vocab_size;
    KvCache cache = model.make_cache(1, T);
    ForwardTrace trace;
    trace.keep_hidden = true;
    const auto& final_hidden = model.forward(prompt, T, cache, &trace);
    std::vector<float> logits(size_t(T * V));
    model.logits(final_hidden.data(), T, logits.data());

    INFO("threads " << threads);
    REQUIRE(trace.hidden.size() == 5);
    for (size_t l = 0; l < 5; ++l) {
      INFO("hidden state " << l);
      CHECK(test::max_abs_diff(trace.hidden[l].data(), &hidden_ref.values[l * T * H], size_t(T * H)) < 1e-3f);
    }
    CHECK(test::max_abs_diff(logits.data(), logits_ref.values.data(), logits.size()) < 1e-3f);
    for (size_t l = 0; l < 4; ++l) {
      std::vector<int32_t> want(experts_ref.values.begin() + l * T * 2, experts_ref.values.begin() + (l + 1) * T * 2);
      CHECK(trace.routing[l].chosen == want);
    }
  }
}
