// Rate control for rate-aware sub1 GPTQ (quantize/rate_control.h) and the
// quantize options built on it: --target-bits, --non-expert, --fit-levels.
#include <catch2/catch.hpp>

#include <cmath>

#include <hdf5.h>

#include "io/checkpoint.h"
#include "io/summary.h"
#include "io/text_file.h"
#include "model/model.h"
#include "model/perplexity.h"
#include "model/thread_pool.h"
#include "model/tokenizer.h"
#include "quant/gptq.h"
#include "quant/quantized_matrix.h"
#include "quant/sub1.h"
#include "quant/tensor_view.h"
#include "quant/tunstall.h"
#include "quantize/pipeline.h"
#include "quantize/rate_control.h"
#include "tests/arch_fixtures.h"
#include "tests/test_paths.h"
#include "tests/test_random.h"

using namespace moec;
namespace fs = std::filesystem;

TEST_CASE("trit code lengths are -log2 of the smoothed frequencies", "[rate]") {
  const auto bits = trit_code_lengths({99, 799, 99});
  CHECK(bits[0] == Approx(-std::log2(0.1)));
  CHECK(bits[1] == Approx(-std::log2(0.8)));
  CHECK(bits[2] == Approx(bits[0]));
  CHECK(std::isfinite(trit_code_lengths({0, 10, 0})[0]));  // never-seen trits get a finite length
}

TEST_CASE("expected sub1 bits match what encode_sub1 stores", "[rate]") {
  for (double p0 : {0.6, 0.8, 0.92}) {
    const int64_t rows = 300, cols = 704;
    const auto trits = random_trits(rows * cols, p0, 3);
    const auto levels = random_level_codes(rows, 4);
    Sub1Census census;
    census.trits = count_trits(trits);
    census.rows = rows;
    census.matrices = 1;
    // The layer's own dictionary, and a shared one built from other counts.
    for (const TritCounts& dict_counts : {census.trits, TritCounts{100, 800, 100}}) {
      const TunstallDictionary dict(dict_counts);
      const double actual = encode_sub1(trits, rows, cols, levels, 1.0f, dict).bits_per_weight();
      const double expected = expected_sub1_bits(dict, census);
      INFO("p0 " << p0 << ": expected " << expected << ", stored " << actual);
      CHECK(std::abs(expected - actual) < 0.01 * actual);
    }
  }
}

TEST_CASE("the lambda search brackets the target and lands within tolerance", "[rate]") {
  // Bits falling smoothly with λ, as measured on the shipped model's
  // layers; the answer is λ ≈ 1.04 · scale, the start (the previous layer's
  // λ) up to 10× off.
  auto bits_at = [](double lambda, double scale) { return std::max(0.3, 1.25 - 0.35 * std::log1p(lambda / scale)); };
  for (double scale : {0.05, 0.3, 2.0}) {
    for (double start : {scale / 10, scale, scale * 10}) {
      LambdaSearch search(1.0, start);
      while (!search.done()) search.observe(search.next(), bits_at(search.next(), scale));
      INFO("scale " << scale << ", start " << start << ": " << search.trials() << " trials");
      const int b = search.best();
      CHECK(std::abs(search.bits(b) - 1.0) <= 0.005);
      CHECK(search.trials() <= 6);
    }
  }
  // A target above what λ = 0 gives needs no trade: one trial.
  LambdaSearch easy(1.5, 0.0);
  easy.observe(0.0, 1.25);
  CHECK(easy.done());
  CHECK(easy.lambda(easy.best()) == 0.0);
  // An unreachable target stops after max_trials, keeping the closest.
  LambdaSearch hard(0.1, 1.0, 0.005, 4);
  while (!hard.done()) hard.observe(hard.next(), bits_at(hard.next(), 1.0));
  CHECK(hard.trials() == 4);
  for (int i = 0; i < hard.trials(); ++i) CHECK(hard.bits(hard.best()) <= hard.bits(i));
}

namespace {

QuantizeOptions sub1_run() {
  QuantizeOptions o;
  o.format = QuantFormat::parse("sub1");
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

TEST_CASE("target bits: the model's experts near the target with one lambda, fewer bits than plain sub1", "[rate][quantize]") {
  test::TempDir tmp;
  auto hf = open_checkpoint(test::fixture_model_dir());
  ThreadPool pool(2);
  const QuantizeReport plain = quantize_model(*hf, tmp / "plain.h5", sub1_run(), pool);
  QuantizeOptions o = sub1_run();
  o.target_bits = plain.expert_bits_per_weight() - 0.1;
  const QuantizeReport rated = quantize_model(*hf, tmp / "rated.h5", o, pool);
  INFO("plain " << plain.expert_bits_per_weight() << ", target " << o.target_bits << ", got "
                << rated.expert_bits_per_weight());
  CHECK(std::abs(rated.expert_bits_per_weight() - o.target_bits) < 0.03);
  CHECK(rated.zero_fraction > plain.zero_fraction);
  // One λ for the model: layer 0 searches it, later layers run once at a λ
  // steered only as far as the model's mean needs.
  const LayerReport& first = rated.layers[0];
  CHECK(first.passes == int(first.trials.size()) + 1);  // its first pass measures its statistics
  CHECK(std::abs(first.expected_bits - o.target_bits) < 0.03);
  for (const LayerReport& l : rated.layers) {
    CHECK(l.rate_lambda > first.rate_lambda / 4);
    CHECK(l.rate_lambda < first.rate_lambda * 4);
    if (l.layer > 0) CHECK(l.passes == 1);
  }
  // What the container says is what the report said.
  auto q = open_checkpoint(tmp / "rated.h5");
  const auto& experts = summarize(*q).components[size_t(Component::Experts)];
  CHECK(std::abs(experts.bits_per_weight() - rated.expert_bits_per_weight()) < 1e-9);
  auto ids = Tokenizer::from_checkpoint(*hf).encode(read_text_file(test::text_file("test")));
  CHECK(eval_ppl(*q, ids) < eval_ppl(*hf, ids) * 1.1);
}

TEST_CASE("non-expert q8/q4: attention, embedding and lm_head encoded, the file smaller, eval close", "[rate][quantize]") {
  test::TempDir tmp;
  auto hf = open_checkpoint(test::fixture_model_dir());
  auto ids = Tokenizer::from_checkpoint(*hf).encode(read_text_file(test::text_file("test")));
  const double baseline = eval_ppl(*hf, ids);
  ThreadPool pool(2);
  QuantizeOptions o = sub1_run();
  o.format = QuantFormat::parse("q4g128");
  const QuantizeReport keep = quantize_model(*hf, tmp / "keep.h5", o, pool);
  CHECK(keep.non_expert_params == 0);
  double last_file_bits = keep.file_bits_per_weight();
  for (auto [mode, spec, tolerance, max_bits] :
       {std::tuple{"q8", "q8g128", 1.02, 8.5}, std::tuple{"q4", "q4g128", 1.06, 4.5}}) {
    o.non_expert = parse_non_expert(mode);
    const QuantizeReport r = quantize_model(*hf, tmp / "q.h5", o, pool);
    INFO(spec);
    auto q = open_checkpoint(tmp / "q.h5");
    const CheckpointSummary s = summarize(*q);
    for (Component c : {Component::Attention, Component::Embedding, Component::LmHead})
      CHECK(s.components[size_t(c)].encodings == std::set<std::string>{spec});
    CHECK(s.components[size_t(Component::Router)].encodings != std::set<std::string>{spec});
    CHECK(r.non_expert_params > 0);
    CHECK(r.non_expert_bits_per_weight() < max_bits);
    CHECK(r.file_bits_per_weight() < last_file_bits);
    last_file_bits = r.file_bits_per_weight();
    const double ppl = eval_ppl(*q, ids);
    INFO("ppl " << ppl << ", bf16 " << baseline);
    CHECK(ppl < baseline * tolerance);
    fs::remove(tmp / "q.h5");
  }
}

TEST_CASE("non-expert plans (--non-expert): one code for every kind, or per kind with later items overriding",
          "[rate][quantize]") {
  const NonExpertPlan keep = parse_non_expert("keep");
  CHECK_FALSE((keep.attention || keep.embedding || keep.lm_head));
  CHECK(keep.spec() == "keep");
  const NonExpertPlan q3 = parse_non_expert("q3");
  REQUIRE((q3.attention && q3.embedding && q3.lm_head));
  CHECK(q3.attention->bits == 3);
  CHECK(q3.attention->group_size == 128);
  CHECK(q3.spec() == "q3g128");
  const NonExpertPlan mixed = parse_non_expert("q3,attn=q2g32,head=q4,attn=q2g64");
  REQUIRE((mixed.attention && mixed.embedding && mixed.lm_head));
  CHECK(mixed.attention->spec() == "q2g64");
  CHECK(mixed.embedding->spec() == "q3g128");
  CHECK(mixed.lm_head->spec() == "q4g128");
  CHECK(mixed.spec() == "attn=q2g64,embed=q3g128,head=q4g128");
  const NonExpertPlan head_only = parse_non_expert("head=q8g64");
  CHECK_FALSE(head_only.attention);
  CHECK_FALSE(head_only.embedding);
  REQUIRE(head_only.lm_head);
  CHECK(head_only.spec() == "attn=keep,embed=keep,head=q8g64");
  CHECK(parse_non_expert("q3,embed=keep").spec() == "attn=q3g128,embed=keep,head=q3g128");
  CHECK(parse_non_expert(" q3 , attn=q2g32 ").spec() == "attn=q2g32,embed=q3g128,head=q3g128");
  CHECK_FALSE(parse_non_expert("q3,embed=q4").lm_head_given);
  CHECK(parse_non_expert("q3,head=q4").lm_head_given);
  CHECK(parse_non_expert("q3,embed=q4").tied().spec() == "attn=q3g128,embed=q4g128,head=q4g128");
}

TEST_CASE("non-expert plans on a tied model: the lm_head follows embed=, a different head= is refused",
          "[rate][quantize]") {
  bool ran = false;
  for (const auto& [name, dir] : test::arch_fixtures()) {
    auto source = open_checkpoint(dir);
    if (!source->config().tie_word_embeddings) continue;
    INFO(name);
    ran = true;
    test::TempDir tmp;
    ThreadPool pool(2);
    QuantizeOptions o = sub1_run();
    o.format = QuantFormat::parse("q4g128");
    o.calib_windows = 4;
    o.dry_run = true;
    o.non_expert = parse_non_expert("q3,head=q4");
    CHECK_THROWS_WITH(quantize_model(*source, tmp / "q.h5", o, pool), Catch::Contains("set both with embed="));
    o.non_expert = parse_non_expert("q3,embed=q4");
    CHECK(quantize_model(*source, tmp / "q.h5", o, pool).non_expert == "attn=q3g128,embed=q4g128,head=q4g128");
    o.non_expert = parse_non_expert("q3,embed=q4,head=q4");  // the same code: allowed
    CHECK(quantize_model(*source, tmp / "q.h5", o, pool).non_expert == "attn=q3g128,embed=q4g128,head=q4g128");
  }
  if (!ran) WARN("no tied architecture fixture (../shared/fixtures/arch): skipped");
}

// Σ over rows h of ‖(W − M)·h‖², W and M [rows, cols] row-major.
double output_error(const std::vector<float>& w, const std::vector<float>& m, int64_t cols,
                    const std::vector<float>& h, int64_t samples) {
  const int64_t rows = int64_t(w.size()) / cols;
  double total = 0;
  for (int64_t s = 0; s < samples; ++s)
    for (int64_t r = 0; r < rows; ++r) {
      double d = 0;
      for (int64_t c = 0; c < cols; ++c) d += double(w[r * cols + c] - m[r * cols + c]) * h[s * cols + c];
      total += d * d;
    }
  return total;
}

// The fixture with 4-bit experts and `non_expert` attention, embedding and
// lm_head, written to `out`.
QuantizeReport quantize_non_expert(const CheckpointSource& hf, const fs::path& out, std::string_view non_expert) {
  ThreadPool pool(2);
  QuantizeOptions o = sub1_run();
  o.format = QuantFormat::parse("q4g128");
  o.non_expert = parse_non_expert(non_expert);
  return quantize_model(hf, out, o, pool);
}

TEST_CASE("non-expert per kind: each kind in its own code, bits counted from the codes", "[rate][quantize]") {
  test::TempDir tmp;
  auto hf = open_checkpoint(test::fixture_model_dir());
  const QuantizeReport r = quantize_non_expert(*hf, tmp / "q.h5", "q3,attn=q2g32,head=q4,embed=q8g64");
  CHECK(r.non_expert == "attn=q2g32,embed=q8g64,head=q4g128");
  auto q = open_checkpoint(tmp / "q.h5");
  const CheckpointSummary s = summarize(*q);
  CHECK(s.components[size_t(Component::Attention)].encodings == std::set<std::string>{"q2g32"});
  CHECK(s.components[size_t(Component::Embedding)].encodings == std::set<std::string>{"q8g64"});
  CHECK(s.components[size_t(Component::LmHead)].encodings == std::set<std::string>{"q4g128"});
  // Bytes per kind from the formats: codes, an f16 scale and a u8 zero per group.
  uint64_t params = 0;
  double bits = 0;
  for (Component c : {Component::Attention, Component::Embedding, Component::LmHead}) {
    params += s.components[size_t(c)].params;
    bits += s.components[size_t(c)].bits_per_weight() * double(s.components[size_t(c)].params);
  }
  CHECK(r.non_expert_params == params);
  CHECK(r.non_expert_bits_per_weight() == Approx(bits / double(params)).epsilon(1e-9));
  const double attention = s.components[size_t(Component::Attention)].bits_per_weight();
  CHECK(attention == Approx(2.0 + 24.0 / 32).epsilon(1e-9));
  CHECK(s.components[size_t(Component::Embedding)].bits_per_weight() == Approx(8.0 + 24.0 / 64).epsilon(1e-9));
}

TEST_CASE("non-expert lm_head: GPTQ on the final-normed stream beats round-to-nearest on held-out text",
          "[rate][quantize]") {
  test::TempDir tmp;
  auto hf = open_checkpoint(test::fixture_model_dir());
  quantize_non_expert(*hf, tmp / "q.h5", "q3");
  auto q = open_checkpoint(tmp / "q.h5");
  ThreadPool pool(2);

  const TensorKey key{TensorRole::LmHead};
  TensorData stored = hf->read(key), coded = q->read(key);
  const int64_t rows = stored.info().shape[0], cols = stored.info().shape[1];
  std::vector<float> w(size_t(rows * cols)), gptq(w.size());
  convert_to_f32(*stored.info().dense_dtype(), stored.bytes().data(), w.data(), w.size());
  REQUIRE(coded.info().encoding == "affine");
  dequantize_rows(quantized_view(coded), 0, rows, gptq.data());
  const QuantizedMatrix rtn = quantize_rtn(w.data(), rows, cols, QuantFormat::parse("q3g128"));
  std::vector<float> nearest(w.size());
  dequantize_rows(rtn.view(), 0, rows, nearest.data());

  // lm_head's inputs on text it was not calibrated on: the bf16 model's
  // final-normed hidden states of the test split's first 64 tokens.
  auto ids = Tokenizer::from_checkpoint(*hf).encode(read_text_file(test::text_file("test")));
  Model model(*hf, pool);
  const int64_t n = 64;
  KvCache cache = model.make_cache(1, n);
  const std::vector<float> h = model.forward(std::span(ids).first(size_t(n)), n, cache);
  const double e_gptq = output_error(w, gptq, cols, h, n), e_rtn = output_error(w, nearest, cols, h, n);
  INFO("GPTQ " << e_gptq << ", RTN " << e_rtn);
  CHECK(e_gptq < 0.8 * e_rtn);
}

TEST_CASE("container: the parts of encoded tensors leave no room for attributes in their headers",
          "[quantize][container]") {
  test::TempDir tmp;
  quantize_non_expert(*open_checkpoint(test::fixture_model_dir()), tmp / "q.h5", "q4");
  const hid_t file = H5Fopen((tmp / "q.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(file >= 0);
  for (const char* part : {"/tensors/lm_head/codes", "/tensors/layers/0/experts/0/w1/scales", "/tokenizer.model"}) {
    const hid_t set = H5Dopen2(file, part, H5P_DEFAULT);
    REQUIRE(set >= 0);
#if H5_VERSION_GE(1, 12, 0)
    H5O_native_info_t info;
    REQUIRE(H5Oget_native_info(set, &info, H5O_NATIVE_INFO_HDR) >= 0);
#else
    H5O_info_t info;
    REQUIRE(H5Oget_info2(set, &info, H5O_INFO_HDR) >= 0);
#endif
    INFO(part << ": header " << info.hdr.space.total << " bytes, " << info.hdr.space.free << " free");
    CHECK(info.hdr.space.free < 64);  // libhdf5's default reserves ~190 bytes for attributes to come
    H5Dclose(set);
  }
  H5Fclose(file);
}

TEST_CASE("rate and level options refuse what they cannot do", "[rate][quantize]") {
  test::TempDir tmp;
  auto hf = open_checkpoint(test::fixture_model_dir());
  ThreadPool pool(1);
  QuantizeOptions o = sub1_run();
  o.format = QuantFormat::parse("ternary-qmoe");
  o.gptq_options.rate.lambda = 0.1;
  CHECK_THROWS_WITH(quantize_model(*hf, tmp / "q.h5", o, pool), Catch::Contains("--code sub1"));
  o = sub1_run();
  o.target_bits = 0.9;
  o.gptq = false;
  CHECK_THROWS_WITH(quantize_model(*hf, tmp / "q.h5", o, pool), Catch::Contains("need --method gptq"));
  o = sub1_run();
  o.format = QuantFormat::parse("q4g128");
  o.gptq_options.level_fits = 1;
  CHECK_THROWS_WITH(quantize_model(*hf, tmp / "q.h5", o, pool), Catch::Contains("--fit-levels"));
  for (const char* bad : {"q1", "attn=q1", "q3,attn=sub1", "ternary-qmoe", "q9g128", "q4g"})
    CHECK_THROWS_WITH(parse_non_expert(bad), Catch::Contains("is not keep, q8, q4, q3, q2 or q<bits 2-8>g<group>"));
  CHECK_THROWS_WITH(parse_non_expert("q3,mlp=q4"), Catch::Contains("unknown kind 'mlp'"));
  CHECK_THROWS_WITH(parse_non_expert("=q4"), Catch::Contains("unknown kind ''"));
  CHECK_THROWS_WITH(parse_non_expert(""), Catch::Contains("empty"));
  for (const char* bad : {"q3,", ",q3", "q3,,attn=q2", " "})
    CHECK_THROWS_WITH(parse_non_expert(bad), Catch::Contains("an empty item"));
  CHECK_THROWS_WITH(parse_non_expert("attn="), Catch::Contains("'' is not keep"));
  CHECK_FALSE(fs::exists(tmp / "q.h5"));
  const std::string base = "quantize '" + test::fixture_model_dir().string() + "' -o '" + (tmp / "x.h5").string() +
                           "' --calib '" + test::text_file("validation").string() + "' --calib-windows 2 ";
  for (const char* flags : {"--bits ternary --code sub1 --rate-lambda 0.1 --target-bits 0.9",
                            "--bits 4 --fit-levels 1", "--bits ternary --code sub1 --non-expert q1",
                            "--bits ternary --code sub1 --rate-lambda -1", "--bits 4 --target-bits 0.9"}) {
    auto cli = test::run_moec(base + flags);
    INFO(flags << ": " << cli.err);
    CHECK(cli.exit_code != 0);
    CHECK(std::count(cli.err.begin(), cli.err.end(), '\n') == 1);
  }
  CHECK_FALSE(fs::exists(tmp / "x.h5"));
}
