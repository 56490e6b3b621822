#include <catch2/catch.hpp>

#include "io/checkpoint.h"
#include "io/checksum.h"
#include "io/container.h"
#include "io/convert.h"
#include "io/error.h"
#include "io/hf_checkpoint.h"
#include "io/hf_writer.h"
#include "io/summary.h"
#include "tests/test_paths.h"

using namespace moec;
using test::TempDir;
namespace fs = std::filesystem;

namespace {

// Every tensor of `b` has the same key, encoding, shape and bytes as in `a`.
void require_same_tensors(const CheckpointSource& a, const CheckpointSource& b) {
  REQUIRE(a.tensors().size() == b.tensors().size());
  for (const TensorInfo& t : a.tensors()) {
    const TensorInfo& u = b.info(t.key);
    REQUIRE(u.encoding == t.encoding);
    REQUIRE(u.shape == t.shape);
    TensorData x = a.read(t.key), y = b.read(t.key);
    REQUIRE(x.bytes().size() == y.bytes().size());
    INFO(t.name);
    REQUIRE(std::memcmp(x.bytes().data(), y.bytes().data(), x.bytes().size()) == 0);
  }
  REQUIRE(a.tokenizer_model() == b.tokenizer_model());
  REQUIRE(a.config_json() == b.config_json());
}

}  // namespace

TEST_CASE("inspect reports the fixture's exact parameter counts", "[checkpoint]") {
  auto source = open_checkpoint(test::fixture_model_dir());
  CheckpointSummary s = summarize(*source);
  CHECK(s.format == "hf-safetensors");
  CHECK(s.params_total == 15'345'920);
  CHECK(s.params_experts == 12'582'912);
  CHECK(s.params_active == 5'908'736);
  CHECK(s.tensor_bytes == 2 * s.params_total);  // bf16 throughout
  CHECK(s.has_tokenizer);
  auto j = to_json(s);
  CHECK(j["components"]["experts"]["bits_per_weight"] == 16.0);
  CHECK(j["layers"] == 4);
  CHECK(j["experts"] == 8);
  CHECK(j["top_k"] == 2);
}

TEST_CASE("HF -> container -> HF is bit-identical for every tensor", "[checkpoint][container]") {
  TempDir tmp;
  auto hf = open_checkpoint(test::fixture_model_dir());
  ConvertResult converted = convert_to_container(*hf, tmp / "m.h5", false, "moec convert test");
  CHECK(converted.tensors == 127);

  auto container = open_checkpoint(tmp / "m.h5");
  CHECK(container->format() == "moec-h5");
  require_same_tensors(*hf, *container);
  CheckpointSummary s = summarize(*container);
  CHECK(s.params_total == 15'345'920);

  write_hf_checkpoint(*container, tmp / "back", {});
  auto back = open_checkpoint(tmp / "back");
  require_same_tensors(*hf, *back);

  SECTION("tensors of the container are mapped, not copied") {
    TensorKey key{TensorRole::ExpertW1, 2, 5};
    CHECK(container->read(key).bytes().data() == container->read(key).bytes().data());
  }
  SECTION("provenance records the source files' checksums") {
    auto& reader = dynamic_cast<ContainerReader&>(*container);
    CHECK(reader.format_version() == kContainerVersion);
    bool found = false;
    for (const auto& f : reader.provenance()["source_files"])
      if (f["file"] == "model.safetensors") {
        found = true;
        CHECK(f["crc32"] == fmt::format("{:08x}", crc32_file(test::fixture_model_dir() / "model.safetensors")));
      }
    CHECK(found);
  }
}

TEST_CASE("sharded export writes an index and reads back identically", "[checkpoint]") {
  TempDir tmp;
  auto hf = open_checkpoint(test::fixture_model_dir());
  HfWriteOptions options;
  options.max_shard_bytes = 8 << 20;
  HfWriteResult result = write_hf_checkpoint(*hf, tmp / "sharded", options);
  CHECK(result.shards == 4);
  CHECK(fs::exists(tmp / "sharded" / "model.safetensors.index.json"));
  CHECK(fs::exists(tmp / "sharded" / "model-00004-of-00004.safetensors"));
  CHECK_FALSE(fs::exists(tmp / "sharded" / "model.safetensors"));
  auto sharded = open_checkpoint(tmp / "sharded");
  require_same_tensors(*hf, *sharded);
  CHECK(sharded->files().size() == 1 + 1 + 4 + 1);  // config, index, shards, tokenizer
}

TEST_CASE("outputs never replace an existing file without --force", "[checkpoint]") {
  TempDir tmp;
  test::write_file(tmp / "m.h5", "keep me");
  auto hf = open_checkpoint(test::fixture_model_dir());
  CHECK_THROWS_WITH(convert_to_container(*hf, tmp / "m.h5", false, "test"), Catch::Contains("already exists"));
  CHECK(test::read_file(tmp / "m.h5") == "keep me");
  convert_to_container(*hf, tmp / "m.h5", true, "test");
  CHECK(open_checkpoint(tmp / "m.h5")->tensors().size() == 127);
  // A file never replaces a folder (or the reverse), even with --force, and
  // this is known before any work is done.
  fs::create_directory(tmp / "folder");
  CHECK_THROWS_WITH(convert_to_container(*hf, tmp / "folder", true, "test"), Catch::Contains("is a directory"));
  CHECK_THROWS_WITH(write_hf_checkpoint(*hf, tmp / "m.h5", {true}), Catch::Contains("is a file"));
  fs::remove(tmp / "folder");
  CHECK(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()) == 1);  // no temporaries
}

TEST_CASE("moec inspect prints the counts in text and JSON", "[cli]") {
  auto text = test::run_moec("inspect '" + test::fixture_model_dir().string() + "'");
  REQUIRE(text.exit_code == 0);
  CHECK_THAT(text.out, Catch::Contains("15,345,920 total, 12,582,912 in experts (82.0%), 5,908,736 active per token"));
  auto json = test::run_moec("inspect --json '" + test::fixture_model_dir().string() + "'");
  REQUIRE(json.exit_code == 0);
  auto j = nlohmann::json::parse(json.out);
  CHECK(j["params_total"] == 15345920);
  CHECK(j["params_active_per_token"] == 5908736);
}

TEST_CASE("moec convert and export round trip through the CLI", "[cli]") {
  TempDir tmp;
  auto convert = test::run_moec("convert '" + test::fixture_model_dir().string() + "' -o '" + (tmp / "m.h5").string() + "'");
  REQUIRE(convert.exit_code == 0);
  auto exported = test::run_moec("export '" + (tmp / "m.h5").string() + "' -o '" + (tmp / "hf").string() + "'");
  REQUIRE(exported.exit_code == 0);
  require_same_tensors(*open_checkpoint(test::fixture_model_dir()), *open_checkpoint(tmp / "hf"));
  auto again = test::run_moec("export '" + (tmp / "m.h5").string() + "' -o '" + (tmp / "hf").string() + "'");
  CHECK(again.exit_code == 1);
  CHECK_THAT(again.err, Catch::Contains("already exists"));
}
