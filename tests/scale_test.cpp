// Scale tools: Mixtral-shaped synthetic checkpoints (moec synth), mapped
// pages released by streaming stages, and quantize --dry-run's projection.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <iterator>

#include "io/checkpoint.h"
#include "io/dtype.h"
#include "io/error.h"
#include "io/synthetic_checkpoint.h"
#include "model/thread_pool.h"
#include "quantize/expert_exchange.h"
#include "quantize/pipeline.h"
#include "tests/test_paths.h"

using namespace moec;
namespace fs = std::filesystem;

namespace {

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

SyntheticOptions mini(int layers, uint64_t seed) {
  SyntheticOptions o;
  o.shape = "mini";
  o.layers = layers;
  o.seed = seed;
  o.tokenizer = test::fixture_model_dir() / "tokenizer.model";
  o.write.max_shard_bytes = 20'000'000;  // several shards and an index
  return o;
}

}  // namespace

TEST_CASE("synth writes a Mixtral-shaped sharded checkpoint, the same for the same seed", "[io][scale]") {
  test::TempDir tmp;
  const HfWriteResult a = write_synthetic_checkpoint(tmp / "a", mini(1, 7));
  CHECK(a.shards > 1);
  CHECK(fs::exists(tmp / "a" / "model.safetensors.index.json"));
  CHECK(fs::exists(tmp / "a" / "tokenizer.model"));
  auto source = open_checkpoint(tmp / "a");
  const ModelConfig& c = source->config();
  CHECK(c.model_type == "mixtral");
  CHECK(c.num_layers == 1);
  CHECK(c.vocab_size == 32000);
  CHECK(c.hidden_size == 512);
  CHECK(c.num_experts == 8);
  CHECK(c.top_k == 2);
  CHECK(c.rope_theta == 1e6);

  // Weights N(0, 0.02²) in bf16, norms 1.
  const std::vector<float> w = source->read({TensorRole::ExpertW2, 0, 3}).to_f32();
  double sum = 0, squares = 0;
  for (float v : w) {
    sum += v;
    squares += double(v) * v;
  }
  const double mean = sum / double(w.size()), std = std::sqrt(squares / double(w.size()) - mean * mean);
  CHECK(std::abs(mean) < 1e-4);
  CHECK(std == Approx(0.02).epsilon(0.01));
  for (float v : source->read({TensorRole::AttnNorm, 0}).to_f32()) REQUIRE(v == 1.0f);

  write_synthetic_checkpoint(tmp / "b", mini(1, 7));
  write_synthetic_checkpoint(tmp / "c", mini(1, 8));
  const std::string shard = "model-00001-of-0000" + std::to_string(a.shards) + ".safetensors";
  CHECK(file_bytes(tmp / "a" / shard) == file_bytes(tmp / "b" / shard));
  CHECK(file_bytes(tmp / "a" / shard) != file_bytes(tmp / "c" / shard));

  CHECK_THROWS_WITH(synthetic_config("mixtral-9x9b", 2), Catch::Contains("mixtral-8x7b, mixtral-8x22b, mini"));
  CHECK_THROWS_WITH(synthetic_config("mixtral-8x7b", 33), Catch::Contains("expected 0..32"));
  CHECK(synthetic_config("mixtral-8x7b", 0)["num_hidden_layers"] == 32);
  CHECK(synthetic_config("mixtral-8x22b", 2)["hidden_size"] == 6144);
}

TEST_CASE("released mapped pages read back the same bytes; copies are left alone", "[io][scale]") {
  auto source = open_checkpoint(test::fixture_model_dir());
  const TensorKey key{TensorRole::ExpertW1, 1, 2};
  const std::vector<float> before = source->read(key).to_f32();
  source->read(key).release_pages();
  CHECK(source->read(key).to_f32() == before);
  const TensorInfo& info = source->info(key);
  std::vector<std::byte> copy(info.nbytes, std::byte{0x5a});
  TensorData owned(info, copy);
  owned.release_pages();  // an owned copy: no madvise, contents intact
  for (std::byte b : owned.bytes()) REQUIRE(b == std::byte{0x5a});
}

TEST_CASE("quantize --dry-run quantizes one layer, writes nothing and projects the whole model", "[quantize][scale]") {
  test::TempDir tmp;
  auto source = open_checkpoint(test::fixture_model_dir());
  QuantizeOptions o;
  o.format = QuantFormat::parse("sub1");
  o.calib = test::text_file("validation");
  o.calib_windows = 16;
  o.ctx = 128;
  o.command_line = "test";
  ThreadPool pool(2);
  const fs::path out = tmp / "out.h5";
  {  // an existing output is not touched by a dry run
    std::ofstream(out) << "keep me";
  }
  o.dry_run = true;
  const QuantizeReport dry = quantize_model(*source, out, o, pool);
  CHECK(file_bytes(out) == "keep me");
  CHECK(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()) == 1);  // no temporary left
  REQUIRE(dry.projection);
  REQUIRE(dry.layers.size() == 1);
  const Projection& p = *dry.projection;
  CHECK(p.layers_measured == 1);
  CHECK(p.layers_total == source->config().num_layers);
  CHECK(p.seconds == Approx(p.setup_seconds + 4 * p.seconds_per_layer));
  CHECK(p.lm_head_seconds == 0);  // kept as stored: nothing to run
  CHECK(p.peak_rss > 0);

  o.dry_run = false;
  o.overwrite = true;
  const QuantizeReport full = quantize_model(*source, out, o, pool);
  CHECK_FALSE(full.projection);
  // Layer 0's codes are the same in both runs, so the projection misses the
  // real file only by the later layers' bits and the container's overhead.
  CHECK(double(p.file_bytes) == Approx(double(full.file_bytes)).epsilon(0.05));
  CHECK(dry.layers[0].relative_error == full.layers[0].relative_error);
}

TEST_CASE("quantize --dry-run with --non-expert runs the lm_head's GPTQ and counts it once", "[quantize][scale]") {
  test::TempDir tmp;
  auto source = open_checkpoint(test::fixture_model_dir());
  REQUIRE_FALSE(source->config().tie_word_embeddings);
  QuantizeOptions o;
  o.format = QuantFormat::parse("q4g128");
  o.non_expert = parse_non_expert("q4,attn=q2g32,head=q8g64");  // each kind sized by its own format
  o.calib = test::text_file("validation");
  o.calib_windows = 8;
  o.ctx = 128;
  o.command_line = "test";
  o.dry_run = true;
  ThreadPool pool(2);
  const QuantizeReport dry = quantize_model(*source, tmp / "out.h5", o, pool);
  REQUIRE(dry.projection);
  const Projection& p = *dry.projection;
  CHECK(p.lm_head_seconds > 0);
  CHECK(p.seconds == Approx(p.setup_seconds + 4 * p.seconds_per_layer + p.lm_head_seconds));
  CHECK(dry.seconds >= p.lm_head_seconds);
  CHECK(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()) == 0);  // nothing written
  CHECK(to_json(dry)["projection"]["lm_head_seconds"].get<double>() == p.lm_head_seconds);
  CHECK(to_text(dry).find("lm_head GPTQ") != std::string::npos);

  o.dry_run = false;
  const QuantizeReport full = quantize_model(*source, tmp / "out.h5", o, pool);
  // q4 experts take the same bytes in every layer, so the projection misses
  // the real file only by the container's overhead (~2% of this tiny file).
  INFO("projected " << p.file_bytes << ", written " << full.file_bytes);
  CHECK(double(p.file_bytes) == Approx(double(full.file_bytes)).epsilon(0.03));
  CHECK(p.file_bytes < full.file_bytes);
}

TEST_CASE("expert results travel between ranks exactly; a short message is an error", "[quantize][scale]") {
  ExpertResult r;
  QuantFormat f = QuantFormat::parse("sub1");
  f.level_scale = 0.37f;
  r.w1 = QuantizedMatrix(f, 3, 7);
  r.w1.codes.assign(r.w1.codes.size(), 0x42);
  r.w1.scales.assign(r.w1.scales.size(), 0x3c00);
  r.w2 = QuantizedMatrix(QuantFormat::parse("q4g32"), 5, 64);
  for (size_t i = 0; i < r.w2.codes.size(); ++i) r.w2.codes[i] = uint8_t(i);
  r.w2.zeros.assign(r.w2.zeros.size(), 8);
  r.fallbacks = {"experts.1.w3: no calibration tokens (RTN used)"};
  r.gptq_seconds = 1.5;
  const std::vector<std::byte> bytes = serialize(r);
  const ExpertResult back = deserialize_expert_result(bytes);
  for (auto [a, b] : {std::pair{&r.w1, &back.w1}, {&r.w2, &back.w2}, {&r.w3, &back.w3}}) {
    CHECK(a->format.spec() == b->format.spec());
    CHECK(a->format.level_scale == b->format.level_scale);
    CHECK(a->rows == b->rows);
    CHECK(a->cols == b->cols);
    CHECK(a->codes == b->codes);
    CHECK(a->scales == b->scales);
    CHECK(a->zeros == b->zeros);
  }
  CHECK(back.fallbacks == r.fallbacks);
  CHECK(back.gptq_seconds == 1.5);
  CHECK(serialize(back) == bytes);
  CHECK_THROWS_WITH(deserialize_expert_result({bytes.begin(), bytes.end() - 9}), Catch::Contains("shorter than it says"));
  // One process: nothing to send, nothing changes.
  std::vector<ExpertResult> all{r};
  share_expert_results(all, MpiWorld::get());
  CHECK(serialize(all[0]) == bytes);
}
