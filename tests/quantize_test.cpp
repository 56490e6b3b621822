#include <catch2/catch.hpp>

#include <cmath>

#include "io/checkpoint.h"
#include "io/error.h"
#include "io/summary.h"
#include "io/text_file.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/perplexity.h"
#include "model/thread_pool.h"
#include "model/tokenizer.h"
#include "quant/sub1.h"
#include "quant/tensor_view.h"
#include "model/calibration.h"
#include "quantize/pipeline.h"
#include "tests/test_paths.h"

using namespace moec;
namespace fs = std::filesystem;

namespace {


QuantizeOptions small_run(const std::string& spec, bool gptq) {
  QuantizeOptions o;
  o.format = QuantFormat::parse(spec);
  o.gptq = gptq;
  o.calib = test::text_file("validation");
  o.calib_windows = 16;
  o.ctx = 128;
  o.command_line = "test";
  return o;
}

double eval_ppl(const CheckpointSource& source, std::span<const int32_t> ids) {
  ThreadPool pool(2);
  Model model(source, pool);
  PerplexityOptions o;
  o.max_windows = 8;
  return evaluate_perplexity(model, ids, o).ppl;
}

}  // namespace

TEST_CASE("calibration windows are drawn by seed without overlap", "[quantize]") {
  std::vector<int32_t> ids(1000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i);
  auto a = calibration_windows(ids, 5, 100, 1), b = calibration_windows(ids, 5, 100, 1);
  CHECK(a == b);
  CHECK(a.size() == 500);
  for (size_t w = 0; w < 5; ++w) CHECK(a[w * 100] % 100 == 0);  // whole, aligned windows
  CHECK(calibration_windows(ids, 5, 100, 2) != a);
  CHECK(calibration_windows(ids, 50, 100, 1).size() == 1000);  // capped at what the text holds
  CHECK_THROWS_WITH(calibration_windows(std::span(ids).first(50), 5, 100, 1), Catch::Contains("fewer than one window"));
}

TEST_CASE("quantized containers run in eval and generate and cost what they say", "[quantize]") {
  test::TempDir tmp;
  auto hf = open_checkpoint(test::fixture_model_dir());
  auto ids = Tokenizer::from_checkpoint(*hf).encode(read_text_file(test::text_file("test")));
  const double baseline = eval_ppl(*hf, ids);
  for (auto [spec, tolerance] : {std::pair{"q4g128", 1.01}, std::pair{"ternary-qmoe", 1.06}}) {
    ThreadPool pool(2);
    QuantizeReport report = quantize_model(*hf, tmp / "q.h5", small_run(spec, true), pool);
    INFO(spec);
    CHECK(report.layers.size() == 4);
    CHECK(report.calib_tokens == 16 * 128);
    for (const auto& l : report.layers) {
      CHECK(l.relative_error > 0);
      CHECK(l.relative_error < (std::string(spec) == "q4g128" ? 0.05 : 0.3));
    }
    auto q = open_checkpoint(tmp / "q.h5");
    CheckpointSummary s = summarize(*q);
    CHECK(s.params_total == 15'345'920);
    const auto& experts = s.components[size_t(Component::Experts)];
    CHECK(experts.encodings == std::set<std::string>{spec});
    CHECK(std::abs(experts.bits_per_weight() - report.expert_bits_per_weight()) < 1e-9);
    CHECK(experts.bits_per_weight() < (std::string(spec) == "q4g128" ? 4.3 : 1.8));
    double ppl = eval_ppl(*q, ids);
    CHECK(ppl < baseline * tolerance);
    CHECK(ppl > baseline * 0.99);
    ThreadPool gen_pool(1);
    Model model(*q, gen_pool);
    std::vector<int32_t> prompt{1, 450, 765};
    CHECK(generate(model, prompt, {}).tokens.size() == 64);
    fs::remove(tmp / "q.h5");
  }
}

TEST_CASE("GPTQ beats RTN end to end and the same seed gives the same codes", "[quantize]") {
  test::TempDir tmp;
  auto hf = open_checkpoint(test::fixture_model_dir());
  ThreadPool pool(2);
  auto rtn = quantize_model(*hf, tmp / "rtn.h5", small_run("q2g128", false), pool);
  auto gptq = quantize_model(*hf, tmp / "a.h5", small_run("q2g128", true), pool);
  for (size_t l = 0; l < 4; ++l) CHECK(gptq.layers[l].relative_error < rtn.layers[l].relative_error);
  quantize_model(*hf, tmp / "b.h5", small_run("q2g128", true), pool);
  auto other_seed = small_run("q2g128", true);
  other_seed.seed = 7;
  quantize_model(*hf, tmp / "c.h5", other_seed, pool);
  auto a = open_checkpoint(tmp / "a.h5"), b = open_checkpoint(tmp / "b.h5"), c = open_checkpoint(tmp / "c.h5");
  bool all_same = true;
  for (const TensorInfo& t : a->tensors()) {
    if (!t.encoded()) continue;
    TensorData x = a->read(t.key), y = b->read(t.key), z = c->read(t.key);
    for (const char* part : {"codes", "scales", "zeros"}) {
      auto p = x.part(part), q = y.part(part), r = z.part(part);
      INFO(t.name << " " << part);
      REQUIRE(std::equal(p.begin(), p.end(), q.begin(), q.end()));
      all_same = all_same && std::equal(p.begin(), p.end(), r.begin(), r.end());
    }
  }
  CHECK_FALSE(all_same);  // another seed draws other windows
}

TEST_CASE("quantize refuses bad requests", "[quantize]") {
  test::TempDir tmp;
  auto hf = open_checkpoint(test::fixture_model_dir());
  ThreadPool pool(1);
  auto o = small_run("q4g128", true);
  o.calib = tmp / "none.txt";
  CHECK_THROWS_WITH(quantize_model(*hf, tmp / "q.h5", o, pool), Catch::Contains("none.txt: cannot open"));
  o = small_run("q4g128", true);
  o.ctx = 4096;
  CHECK_THROWS_WITH(quantize_model(*hf, tmp / "q.h5", o, pool), Catch::Contains("exceeds the model's max_position"));
  quantize_model(*hf, tmp / "q.h5", small_run("q4g128", false), pool);
  auto q = open_checkpoint(tmp / "q.h5");
  CHECK_THROWS_WITH(quantize_model(*q, tmp / "qq.h5", small_run("q4g128", false), pool),
                    Catch::Contains("already quantized"));
  CHECK_FALSE(fs::exists(tmp / "qq.h5"));
  auto cli = test::run_moec("quantize '" + test::fixture_model_dir().string() + "' -o '" + (tmp / "x.h5").string() +
                            "' --bits 5 --calib '" + test::text_file("validation").string() + "'");
  CHECK(cli.exit_code != 0);
  CHECK(std::count(cli.err.begin(), cli.err.end(), '\n') == 1);
  auto no_calib = test::run_moec("quantize '" + test::fixture_model_dir().string() + "' -o '" + (tmp / "x.h5").string() + "'");
  CHECK(no_calib.exit_code != 0);
  CHECK_THAT(no_calib.err, Catch::Contains("--calib is required"));
  for (const char* flags : {"--bits 4 --code sub1", "--bits ternary --ternary sym --code sub1"}) {
    auto sub1 = test::run_moec("quantize '" + test::fixture_model_dir().string() + "' -o '" +
                               (tmp / "x.h5").string() + "' " + flags + " --calib '" +
                               test::text_file("validation").string() + "'");
    CHECK(sub1.exit_code != 0);
    CHECK_THAT(sub1.err, Catch::Contains("--code sub1 codes ternary weights on the qmoe grid"));
    CHECK(std::count(sub1.err.begin(), sub1.err.end(), '\n') == 1);
  }
  CHECK_FALSE(fs::exists(tmp / "x.h5"));
}

namespace {

// The same checkpoint with every sub1 tensor decoded to dense f32 by the
// scalar reference decoder: what the sub1 kernels must reproduce.
class DequantizedSource : public CheckpointSource {
 public:
  explicit DequantizedSource(const CheckpointSource& inner) : inner_(inner) {
    path_ = inner.path();
    config_json_ = inner.config_json();
    config_ = inner.config();
    tensors_ = inner.tensors();
    for (TensorInfo& t : tensors_)
      if (t.encoding == "sub1") {
        t.encoding = "f32";
        t.format.clear();
        t.parts.clear();
        t.nbytes = t.numel() * 4;
      }
  }
  std::string_view format() const override { return inner_.format(); }
  TensorData read(const TensorKey& key) const override {
    const TensorInfo& info = this->info(key);
    TensorData data = inner_.read(key);
    if (data.info().encoding != "sub1") return TensorData(info, std::vector<std::byte>(data.bytes().begin(), data.bytes().end()));
    const Sub1View v = sub1_view(data);
    std::vector<std::byte> bytes(info.numel() * 4);
    dequantize_sub1_rows(v, 0, v.rows, reinterpret_cast<float*>(bytes.data()));
    return TensorData(info, std::move(bytes));
  }
  std::optional<std::vector<std::byte>> tokenizer_model() const override { return inner_.tokenizer_model(); }
  std::optional<std::vector<std::byte>> tokenizer_json() const override { return inner_.tokenizer_json(); }
  std::optional<std::vector<std::byte>> tokenizer_config() const override { return inner_.tokenizer_config(); }
  std::vector<fs::path> files() const override { return inner_.files(); }

 private:
  const CheckpointSource& inner_;
};

}  // namespace

TEST_CASE("sub1 containers: below 1.3 bits, perplexity through the kernels equals the dequantized codes'",
          "[quantize][sub1]") {
  test::TempDir tmp;
  auto hf = open_checkpoint(test::fixture_model_dir());
  auto ids = Tokenizer::from_checkpoint(*hf).encode(read_text_file(test::text_file("test")));
  ThreadPool pool(2);
  QuantizeReport report = quantize_model(*hf, tmp / "s.h5", small_run("sub1", true), pool);
  auto q = open_checkpoint(tmp / "s.h5");
  CheckpointSummary s = summarize(*q);
  const auto& experts = s.components[size_t(Component::Experts)];
  CHECK(experts.encodings == std::set<std::string>{"sub1"});
  CHECK(std::abs(experts.bits_per_weight() - report.expert_bits_per_weight()) < 1e-9);
  CHECK(experts.bits_per_weight() < 1.3);
  const double kernels = eval_ppl(*q, ids), reference = eval_ppl(DequantizedSource(*q), ids),
               baseline = eval_ppl(*hf, ids);
  INFO("sub1 kernels " << kernels << ", dequantized " << reference << ", bf16 " << baseline);
  CHECK(std::abs(kernels - reference) <= 1e-4 * reference);
  CHECK(kernels < baseline * 1.06);
  ThreadPool gen_pool(1);
  Model model(*q, gen_pool);
  std::vector<int32_t> prompt{1, 450, 765};
  CHECK(generate(model, prompt, {}).tokens.size() == 64);
}
