#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>

#include "io/checkpoint.h"
#include "io/error.h"
#include "io/safetensors_writer.h"
#include "merge/alignment.h"
#include "merge/methods.h"
#include "merge/pipeline.h"
#include "model/model.h"
#include "model/thread_pool.h"
#include "tests/test_paths.h"

using namespace moec;
namespace fs = std::filesystem;

namespace {


MergeOptions options(MergeMethod method, int64_t k) {
  MergeOptions o;
  o.method = method;
  o.experts = k;
  o.calib = test::text_file("validation");
  o.calib_windows = 4;
  o.ctx = 128;
  o.sample_tokens = 256;
  return o;
}

// Final hidden states of the model on a fixed token sequence.
std::vector<float> run(const CheckpointSource& source, const std::vector<int32_t>& tokens) {
  ThreadPool pool(1);
  Model model(source, pool);
  KvCache cache = model.make_cache(1, int64_t(tokens.size()));
  return model.forward(tokens, int64_t(tokens.size()), cache);
}

// The fixture with every layer's experts replaced by copies of expert 0, so
// that any routing gives the same output.
void write_identical_experts(const fs::path& dir) {
  auto source = open_checkpoint(test::fixture_model_dir());
  const ArchitectureNames& arch = *find_architecture("mixtral");
  fs::create_directories(dir);
  fs::copy_file(test::fixture_model_dir() / "config.json", dir / "config.json");
  fs::copy_file(test::fixture_model_dir() / "tokenizer.model", dir / "tokenizer.model");
  std::vector<TensorSpec> specs;
  for (const TensorInfo& t : source->tensors()) specs.push_back({hf_name(arch, t.key), *t.dense_dtype(), t.shape});
  SafetensorsWriter writer(dir / "model.safetensors", specs);
  for (const TensorInfo& t : source->tensors()) {
    TensorKey from = t.key;
    if (from.expert > 0) from.expert = 0;
    writer.write(hf_name(arch, t.key), source->read(from).bytes());
  }
  writer.finish();
}

const MergeMethod kMethods[] = {MergeMethod::PruneFreq, MergeMethod::PruneSearch, MergeMethod::MergeFreq,
                                MergeMethod::MergeAligned, MergeMethod::MergeCluster};

}  // namespace

TEST_CASE("alignment recovers a known random permutation exactly", "[merge]") {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  ExpertMatrices a{48, 16, {}, {}, {}};
  for (auto* v : {&a.w1, &a.w3}) v->resize(48 * 16);
  a.w2.resize(16 * 48);
  for (auto* v : {&a.w1, &a.w2, &a.w3})
    for (float& x : *v) x = normal(rng);
  std::vector<int64_t> p(48);
  std::iota(p.begin(), p.end(), 0);
  std::shuffle(p.begin(), p.end(), rng);
  ExpertMatrices b = permute_neurons(a, p);  // neuron i of b is neuron p[i] of a
  std::vector<int64_t> inverse(48);
  for (int64_t i = 0; i < 48; ++i) inverse[p[i]] = i;
  CHECK(align_neurons(a, b) == inverse);
  ExpertMatrices back = permute_neurons(b, align_neurons(a, b));
  CHECK(back.w1 == a.w1);
  CHECK(back.w2 == a.w2);
  CHECK(back.w3 == a.w3);
  // The wide-expert path (blocked GEMM similarities, greedy over each
  // neuron's candidates, rounds for the rest) finds it too, with and
  // without a pool, and gives a permutation on noisy data.
  ThreadPool pool(2);
  CHECK(align_neurons(a, b, nullptr, 0) == inverse);
  CHECK(align_neurons(a, b, &pool, 0) == inverse);
  ExpertMatrices noisy = b;
  for (auto* v : {&noisy.w1, &noisy.w2, &noisy.w3})
    for (float& x : *v) x += 2.0f * normal(rng);
  auto q = align_neurons(a, noisy, &pool, 0);
  std::vector<int64_t> sorted = q;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> identity(48);
  std::iota(identity.begin(), identity.end(), 0);
  CHECK(sorted == identity);
  // The greedy matcher (used above 2048 neurons) finds it too on clear data.
  std::vector<double> cost(9, 1.0);
  cost[0 * 3 + 2] = cost[1 * 3 + 0] = cost[2 * 3 + 1] = 0.0;
  CHECK(solve_assignment(cost, 3, 0) == std::vector<int64_t>{2, 0, 1});
  CHECK(solve_assignment(cost, 3) == std::vector<int64_t>{2, 0, 1});
}

TEST_CASE("K = E is the identity for every method", "[merge]") {
  test::TempDir tmp;
  auto source = open_checkpoint(test::fixture_model_dir());
  ThreadPool pool(2);
  for (MergeMethod method : kMethods) {
    INFO(merge_method_name(method));
    merge_model(*source, tmp / "same", options(method, 8), pool);
    auto merged = open_checkpoint(tmp / "same");
    REQUIRE(merged->tensors().size() == source->tensors().size());
    for (const TensorInfo& t : source->tensors()) {
      auto a = source->read(t.key).bytes(), b = merged->read(t.key).bytes();
      REQUIRE(std::equal(a.begin(), a.end(), b.begin(), b.end()));
    }
    fs::remove_all(tmp / "same");
  }
}

TEST_CASE("merging identical experts gives back the same model output", "[merge]") {
  test::TempDir tmp;
  write_identical_experts(tmp / "twins");
  auto twins = open_checkpoint(tmp / "twins");
  std::vector<int32_t> tokens{1, 450, 765, 311, 29, 1002, 7, 88, 3000, 12};
  auto want = run(*twins, tokens);
  ThreadPool pool(2);
  for (MergeMethod method : kMethods)
    for (int64_t k : {1, 3}) {
      INFO(merge_method_name(method) << " K=" << k);
      MergeReport report = merge_model(*twins, tmp / "merged", options(method, k), pool);
      auto merged = open_checkpoint(tmp / "merged");
      CHECK(merged->config().num_experts == k);
      CHECK(merged->config().top_k == std::min<int64_t>(2, k));
      auto got = run(*merged, tokens);
      REQUIRE(got.size() == want.size());
      float worst = 0;
      for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
      CHECK(worst < 2e-2f);  // bf16 rounding of the rewritten router and experts only
      fs::remove_all(tmp / "merged");
    }
}

TEST_CASE("merged checkpoints shrink and load like any Mixtral", "[merge]") {
  test::TempDir tmp;
  auto source = open_checkpoint(test::fixture_model_dir());
  ThreadPool pool(2);
  MergeReport report = merge_model(*source, tmp / "k2", options(MergeMethod::MergeAligned, 2), pool);
  CHECK(report.params_before == 15'345'920);
  CHECK(report.params_after == 15'345'920 - 4 * 6 * 3 * 512 * 256 - 4 * 6 * 256);
  auto merged = open_checkpoint(tmp / "k2");
  CHECK(merged->config().num_experts == 2);
  const double ratio = double(fs::file_size(tmp / "k2" / "model.safetensors")) /
                       double(fs::file_size(test::fixture_model_dir() / "model.safetensors"));
  CHECK(std::abs(ratio - double(report.params_after) / double(report.params_before)) < 0.01);
  CHECK(report.layers.size() == 4);
  for (const auto& l : report.layers) {
    CHECK(l.groups.size() == 2);
    size_t members = 0;
    for (const auto& g : l.groups) members += g.size();
    CHECK(members == 8);  // every expert lands in one group
  }
  // .h5 output too, readable by the runtime.
  merge_model(*source, tmp / "k6.h5", options(MergeMethod::PruneSearch, 6), pool);
  CHECK(open_checkpoint(tmp / "k6.h5")->config().num_experts == 6);
}

TEST_CASE("merge refuses a bad K or method", "[merge]") {
  test::TempDir tmp;
  auto source = open_checkpoint(test::fixture_model_dir());
  ThreadPool pool(1);
  for (int64_t k : {0, 9, -1})
    CHECK_THROWS_WITH(merge_model(*source, tmp / "x", options(MergeMethod::PruneFreq, k), pool),
                      Catch::Contains("--experts " + std::to_string(k) + " must be between 1 and the model's 8 experts"));
  CHECK_FALSE(fs::exists(tmp / "x"));
  CHECK_THROWS_WITH(parse_merge_method("merge-magic"), Catch::Contains("merge method 'merge-magic' is not known"));
  auto cli = test::run_moec("merge '" + test::fixture_model_dir().string() + "' -o '" + (tmp / "y").string() +
                            "' --experts 0 --calib '" + test::text_file("validation").string() + "'");
  CHECK(cli.exit_code == 1);
  CHECK(std::count(cli.err.begin(), cli.err.end(), '\n') == 1);
  CHECK_FALSE(fs::exists(tmp / "y"));
}

TEST_CASE("routed output follows norm_topk_prob: raw softmax weights over the kept experts, or renormalized over k",
          "[merge]") {
  LayerStats s;
  s.experts = 3;
  s.hidden = 1;
  s.samples = 1;
  s.top_k = 2;
  s.logits = {2.0f, 1.0f, 0.0f};
  s.outputs = {{1.0f}, {10.0f}, {100.0f}};
  const double e2 = std::exp(2.0), e1 = std::exp(1.0), e0 = 1.0;
  s.normalize = false;  // Qwen's default: the two largest of softmax over all three
  CHECK(routed_output(s, {0, 1, 2})[0] == Approx((e2 * 1 + e1 * 10) / (e2 + e1 + e0)).epsilon(1e-6));
  CHECK(routed_output(s, {0, 1})[0] == Approx((e2 * 1 + e1 * 10) / (e2 + e1)).epsilon(1e-6));  // a pruned router
  CHECK(routed_output(s, {1, 2})[0] == Approx((e1 * 10 + e0 * 100) / (e1 + e0)).epsilon(1e-6));
  s.normalize = true;  // Mixtral: the two renormalized to sum 1
  CHECK(routed_output(s, {0, 1, 2})[0] == Approx((e2 * 1 + e1 * 10) / (e2 + e1)).epsilon(1e-6));
  s.top_k = 1;
  s.normalize = false;
  CHECK(routed_output(s, {0, 1, 2})[0] == Approx(e2 / (e2 + e1 + e0)).epsilon(1e-6));
}
