// The student's training pass against PyTorch's float64 autograd, and the
// `moec distill` stage end to end.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "distill/adamw.h"
#include "distill/student.h"
#include "distill/student_pass.h"
#include "io/checkpoint.h"
#include "model/thread_pool.h"
#include "tests/reference.h"
#include "tests/test_paths.h"

using namespace moec;
using namespace moec::distill;
namespace fs = std::filesystem;

TEST_CASE("distill: student gradients equal the float64 autograd reference", "[distill][reference]") {
  const fs::path dir = test::fixtures_dir() / "tiny-mistral-student";
  const fs::path ref = test::fixtures_dir() / "reference" / "tiny-mistral-student.grad.h5";
  if (!fs::exists(dir / "config.json") || !fs::exists(ref)) {
    WARN("tiny-mistral-student and its gradient reference need ../shared/fixtures; skipped");
    return;
  }
  auto source = open_checkpoint(dir);
  Student student = Student::from_dense(*source);
  const auto ids = test::read_reference_ints(ref, "ids");
  REQUIRE(ids.dims == std::vector<size_t>{2, 128});
  ThreadPool pool(2);
  StudentPass pass(student, pool, 2, 128);
  const LossSums sums = pass.run(ids.values, nullptr, {}, true);
  const double want = test::read_reference_floats(ref, "loss").values.at(0);
  CHECK(sums.rows == 2 * 127);
  CHECK(std::abs(sums.loss / double(sums.rows) / want - 1) < 1e-5);
  for (const Parameter& p : student.parameters()) {
    INFO(p.name);
    const auto grad = test::read_reference_floats(ref, "grad/" + p.name);
    REQUIRE(grad.values.size() == p.grad.size());
    double diff = 0, norm = 0;
    for (size_t i = 0; i < p.grad.size(); ++i) {
      diff += std::pow(double(p.grad[i]) - grad.values[i], 2);
      norm += std::pow(double(grad.values[i]), 2);
    }
    const double relative = std::sqrt(diff / norm);
    INFO("relative error " << relative);
    CHECK(relative <= 1e-3);
  }
}

namespace {

// A tiny dense Mistral with weights scaled up so that gradients are large
// enough to see through f32 rounding.
Student tiny_student(const test::TempDir& tmp) {
  test::write_tiny_checkpoint(tmp / "student", test::tiny_dense_config());
  auto source = open_checkpoint(tmp / "student");
  Student s = Student::from_dense(*source);
  for (Parameter& p : s.parameters())
    for (float& v : p.value) v = p.is_vector() ? 1.0f + 5 * v : 10 * v;
  return s;
}

}  // namespace

TEST_CASE("distill: the whole student's gradient matches finite differences", "[distill][gradcheck]") {
  test::TempDir tmp;
  Student student = tiny_student(tmp);
  ThreadPool pool(2);
  const int64_t windows = 2, ctx = 8, vocab = student.config().vocab_size;
  std::mt19937 rng(7);
  std::vector<int32_t> ids(size_t(windows * ctx));
  for (int32_t& id : ids) id = int32_t(rng() % uint32_t(vocab));
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> teacher(ids.size() * size_t(vocab));
  for (float& v : teacher) v = normal(rng);
  for (const LossWeights weights : {LossWeights{0.0f, 1.0f}, LossWeights{0.5f, 2.0f}}) {
    INFO("alpha " << weights.alpha);
    StudentPass pass(student, pool, windows, ctx);
    auto loss = [&] {
      const LossSums s = pass.run(ids, teacher.data(), weights, false);
      return s.loss / double(s.rows);
    };
    student.zero_grad();
    pass.run(ids, teacher.data(), weights, true);
    for (Parameter& p : student.parameters()) {
      INFO(p.name);
      const std::vector<float> analytic = p.grad;
      size_t largest = 0;
      for (size_t i = 0; i < analytic.size(); ++i)
        if (std::abs(analytic[i]) > std::abs(analytic[largest])) largest = i;
      CHECK(std::abs(analytic[largest]) > 1e-3);  // the check below means something
      for (size_t i : {largest, analytic.size() / 3, analytic.size() - 1}) {
        const float saved = p.value[i], step = 1e-2f;
        p.value[i] = saved + step;
        const double up = loss();
        p.value[i] = saved - step;
        const double down = loss();
        p.value[i] = saved;
        const double numeric = (up - down) / (2.0 * step);
        INFO("index " << i << ": analytic " << analytic[i] << ", numeric " << numeric);
        CHECK(std::abs(analytic[i] - numeric) <= 2e-2 * std::max(std::abs(double(analytic[i])), std::abs(numeric)) + 1e-4);
      }
    }
  }
}

TEST_CASE("distill: AdamW schedule, clipping and convergence", "[distill]") {
  Parameter p{{TensorRole::Embed}, "w", {4, 2}, std::vector<float>(8, 3.0f), std::vector<float>(8, 0.0f)};
  AdamWOptions o;
  o.lr = 0.1f;
  o.warmup_steps = 10;
  o.total_steps = 110;
  o.min_lr_ratio = 0.1f;
  o.clip_norm = 1.0f;
  AdamW adam({&p}, o);
  CHECK(adam.learning_rate(0) == Approx(0.01f));
  CHECK(adam.learning_rate(9) == Approx(0.1f));
  CHECK(adam.learning_rate(60) == Approx(0.1f * (0.1f + 0.9f * 0.5f)));  // half way down the cosine
  CHECK(adam.learning_rate(110) == Approx(0.01f));
  // Minimizes Σ (w − 1)²: the gradient norm is reported before clipping.
  double first_norm = 0;
  for (int step = 0; step < 110; ++step) {
    for (size_t i = 0; i < p.value.size(); ++i) p.grad[i] = 2 * (p.value[i] - 1.0f);
    const double norm = adam.step();
    if (step == 0) first_norm = norm;
    for (float g : p.grad) REQUIRE(g == 0.0f);  // zeroed for the next step
  }
  CHECK(first_norm == Approx(4.0 * std::sqrt(8.0)));
  for (float v : p.value) CHECK(std::abs(v - 1.0f) < 0.05f);
  CHECK(adam.steps_taken() == 110);
}

namespace {

// A short distillation of the shipped model (seconds, not minutes).
std::string quick_distill(const fs::path& out, const std::string& extra = "", int width = 256) {
  return "distill '" + test::fixture_model_dir().string() + "' -o '" + out.string() + "' --width " +
         std::to_string(width) + " --calib '" +
         test::text_file("train").string() +
         "' --ctx 64 --calib-windows 8 --validation-windows 2 --layer-windows 4 --layer-epochs 1 --steps 2 "
         "--batch-windows 2 --curve-points 2 --threads 2 --json " + extra;
}

}  // namespace

TEST_CASE("distill: moec distill writes a Mistral student every command runs, reproducibly", "[distill][cli]") {
  test::TempDir tmp;
  const auto first = test::run_moec(quick_distill(tmp / "student"));
  INFO(first.err);
  REQUIRE(first.exit_code == 0);
  const auto report = nlohmann::json::parse(first.out);
  CHECK(report["width"] == 256);
  REQUIRE(report["stages"].size() == 3);
  CHECK(report["stages"][0]["name"] == "init");
  CHECK(report["stages"][1]["name"] == "layerwise");
  CHECK(report["stages"][2]["name"] == "end-to-end");
  CHECK(report["curve"].size() == 2);
  for (const auto& layer : report["layers"])  // the fit improves on its start
    CHECK(layer["relative_error_fitted"].get<double>() < layer["relative_error_init"].get<double>());
  CHECK(report["stages"][1]["validation_ppl"].get<double>() < report["stages"][0]["validation_ppl"].get<double>());
  CHECK(report["memory"]["peak_rss_bytes"].get<uint64_t>() > 0);

  auto student = open_checkpoint(tmp / "student");
  CHECK(student->config().model_type == "mistral");
  CHECK_FALSE(student->config().moe());
  CHECK(student->config().intermediate_size == 256);
  CHECK(student->config_json()["architectures"][0] == "MistralForCausalLM");
  CHECK(fs::exists(tmp / "student" / "tokenizer.model"));
  CHECK(report["student_params"].get<uint64_t>() == [&] {
    uint64_t n = 0;
    for (const TensorInfo& t : student->tensors()) n += t.numel();
    return n;
  }());
  const auto eval = test::run_moec("eval '" + (tmp / "student").string() + "' --text '" +
                                   test::text_file("validation").string() + "' --ctx 64 --max-windows 2");
  INFO(eval.err);
  CHECK(eval.exit_code == 0);
  CHECK(eval.out.find("perplexity") != std::string::npos);

  // Same seed, same threads: the same bytes. A container too.
  const auto second = test::run_moec(quick_distill(tmp / "again"));
  REQUIRE(second.exit_code == 0);
  CHECK(test::read_file(tmp / "student" / "model.safetensors") == test::read_file(tmp / "again" / "model.safetensors"));
  const auto h5 = test::run_moec(quick_distill(tmp / "student.h5"));
  INFO(h5.err);
  REQUIRE(h5.exit_code == 0);
  auto container = open_checkpoint(tmp / "student.h5");
  for (const TensorInfo& t : student->tensors())
    CHECK(container->read(t.key).to_f32() == student->read(t.key).to_f32());

  // The student quantizes like an MoE (its MLP is one expert every token
  // reaches), and the quantized container runs.
  const fs::path quantized = tmp / "student.q4.h5";
  const auto q = test::run_moec("quantize '" + (tmp / "student").string() + "' -o '" + quantized.string() +
                                "' --bits 4 --calib '" + test::text_file("train").string() +
                                "' --calib-windows 4 --ctx 64 --threads 2 --json");
  INFO(q.err);
  REQUIRE(q.exit_code == 0);
  auto packed = open_checkpoint(quantized);
  CHECK(packed->info({TensorRole::MlpGate, 0, -1}).encoded());
  CHECK(packed->info({TensorRole::MlpDown, 3, -1}).encoded());
  CHECK_FALSE(packed->info({TensorRole::AttnQ, 0, -1}).encoded());
  const auto eval_bf16 = nlohmann::json::parse(test::run_moec("eval '" + (tmp / "student").string() + "' --text '" +
                                               test::text_file("validation").string() + "' --ctx 64 --max-windows 8 --json").out);
  const auto eval_q4 = test::run_moec("eval '" + quantized.string() + "' --text '" +
                                      test::text_file("validation").string() + "' --ctx 64 --max-windows 8 --json");
  INFO(eval_q4.err);
  REQUIRE(eval_q4.exit_code == 0);
  const double ppl_bf16 = eval_bf16["ppl"], ppl_q4 = nlohmann::json::parse(eval_q4.out)["ppl"];
  CHECK(ppl_q4 > ppl_bf16 * 0.98);  // 4-bit MLPs cost a little, not a lot
  CHECK(ppl_q4 < ppl_bf16 * 1.10);
}

TEST_CASE("distill: bad input gets a one-line error and no output", "[distill][cli]") {
  test::TempDir tmp;
  const fs::path out = tmp / "out";
  auto expect_error = [&](const std::string& args, const std::string& needle) {
    INFO(args);
    const auto r = test::run_moec(args);
    INFO(r.err);
    CHECK(r.exit_code != 0);
    CHECK(r.err.find(needle) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK_FALSE(fs::exists(out));
  };
  expect_error(quick_distill(out, "", 0), "--width 0");
  test::write_file(tmp / "empty.txt", "");
  std::string no_text = quick_distill(out);
  no_text.replace(no_text.find(test::text_file("train").string()), test::text_file("train").string().size(),
                  (tmp / "empty.txt").string());
  expect_error(no_text, "empty.txt");
  test::write_tiny_checkpoint(tmp / "dense", test::tiny_dense_config());
  std::string dense_teacher = quick_distill(out);
  dense_teacher.replace(dense_teacher.find(test::fixture_model_dir().string()), test::fixture_model_dir().string().size(),
                        (tmp / "dense").string());
  expect_error(dense_teacher, "not an MoE teacher");
  expect_error(quick_distill(out, "--alpha 2"), "--alpha");
  // An existing output is kept unless --force.
  fs::create_directories(out);
  test::write_file(out / "keep", "x");
  const auto r = test::run_moec(quick_distill(out));
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("exists") != std::string::npos);
  CHECK(test::read_file(out / "keep") == "x");
}
