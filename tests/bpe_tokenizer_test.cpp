// tokenizer.json byte-level BPE against the reference ids of
// ../shared/fixtures/tokenizers/reference.json (protocol in its README).
#include <catch2/catch.hpp>

#include <openssl/evp.h>

#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/text_file.h"
#include "io/checkpoint.h"
#include "model/bpe_tokenizer.h"
#include "model/tokenizer.h"
#include "tests/test_paths.h"

using namespace moec;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string sha256_hex(const std::vector<int32_t>& ids) {
  std::string bytes;  // consecutive little-endian int32 (x86 is little-endian)
  bytes.resize(ids.size() * 4);
  std::memcpy(bytes.data(), ids.data(), bytes.size());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

}  // namespace

TEST_CASE("tokenizer.json BPE: ids and decodes equal the Hugging Face reference", "[model][tokenizer]") {
  const fs::path dir = test::fixtures_dir() / "tokenizers";
  if (!fs::exists(dir / "reference.json")) {
    WARN("tokenizer fixtures need ../shared/fixtures/tokenizers; skipped");
    return;
  }
  const json reference = json::parse(test::read_file(dir / "reference.json"));
  const std::string brown = read_text_file(test::text_file("test"));
  for (const auto& [name, r] : reference["tokenizers"].items()) {
    INFO(name);
    BpeTokenizer tokenizer(test::read_file(dir / name / "tokenizer.json"), name);
    for (const json& c : r["cases"]) {
      INFO("case " << c["name"].get<std::string>());
      const std::string text = c["text"];
      const auto ids = tokenizer.encode(text);
      CHECK(ids == c["ids"].get<std::vector<int32_t>>());
      // Chunks of 1..7 bytes: cuts inside pieces, characters and space runs
      // must still give one pass's ids (and NFC parts the whole text's).
      for (size_t chunk : {1, 2, 3, 7}) CHECK(tokenizer.encode(text, chunk) == ids);
      CHECK(tokenizer.decode(c["ids"].get<std::vector<int32_t>>()) == c["decoded"].get<std::string>());
      const std::string skip = c.contains("decoded_skip_special") ? c["decoded_skip_special"] : c["decoded"];
      CHECK(tokenizer.decode(c["ids"].get<std::vector<int32_t>>(), true) == skip);
    }
    for (const json& c : r["decode_cases"]) {
      INFO("decode case " << c["name"].get<std::string>());
      CHECK(tokenizer.decode(c["ids"].get<std::vector<int32_t>>(), c["skip_special_tokens"].get<bool>()) ==
            c["decoded"].get<std::string>());
    }
    const json& b = r["brown_test"];
    const auto ids = tokenizer.encode(brown);
    CHECK(int64_t(ids.size()) == b["id_count"].get<int64_t>());
    const auto first = b["first_ids"].get<std::vector<int32_t>>();
    REQUIRE(ids.size() >= first.size());
    CHECK(std::vector<int32_t>(ids.begin(), ids.begin() + ptrdiff_t(first.size())) == first);
    CHECK(sha256_hex(ids) == b["ids_sha256_int32le"].get<std::string>());
    CHECK(tokenizer.decode(ids) == brown);
    CHECK(tokenizer.encode(brown, 997) == ids);  // ~490 chunks on every core
    CHECK(tokenizer.encode(brown, size_t{1} << 30) == ids);  // one pass
  }
}

TEST_CASE("tokenizer.json BPE: unsupported or broken files are refused naming the file", "[model][tokenizer]") {
  CHECK_THROWS_WITH(BpeTokenizer("{", "t.json"), Catch::Contains("t.json"));
  CHECK_THROWS_WITH(BpeTokenizer(R"({"model": {"type": "Unigram", "vocab": []}})", "t.json"),
                    Catch::Contains("not BPE"));
  CHECK_THROWS_WITH(BpeTokenizer(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})", "t.json"),
                    Catch::Contains("not in the vocabulary"));
  CHECK_THROWS_WITH(
      BpeTokenizer(R"({"normalizer": {"type": "NFKC"}, "model": {"type": "BPE", "vocab": {}, "merges": []}})", "t.json"),
      Catch::Contains("NFKC"));
}

TEST_CASE("tokenizer.json travels with the checkpoint: HF folder, container, export, eval", "[model][tokenizer]") {
  const fs::path json_file = test::fixtures_dir() / "tokenizers" / "bpe-qwen2-style" / "tokenizer.json";
  if (!fs::exists(json_file)) {
    WARN("tokenizer fixtures need ../shared/fixtures/tokenizers; skipped");
    return;
  }
  test::TempDir tmp;
  const fs::path hf = tmp / "hf", h5 = tmp / "model.h5", back = tmp / "back";
  fs::create_directories(hf);
  const fs::path model = test::fixture_model_dir();
  fs::copy_file(model / "config.json", hf / "config.json");
  fs::create_symlink(fs::absolute(model / "model.safetensors"), hf / "model.safetensors");
  fs::copy_file(json_file, hf / "tokenizer.json");  // and no tokenizer.model
  const std::string text = "The jury said it did find that the <think>city</think> was well run.";
  const BpeTokenizer reference(test::read_file(json_file), "reference");
  const auto want = reference.encode(text);
  {
    auto source = open_checkpoint(hf);
    const Tokenizer tokenizer = Tokenizer::from_checkpoint(*source);
    CHECK(tokenizer.encode(text) == want);
    CHECK(tokenizer.decode(want) == text);
    CHECK(tokenizer.bos_id() == -1);
  }
  REQUIRE(test::run_moec("convert '" + hf.string() + "' -o '" + h5.string() + "'").exit_code == 0);
  {
    auto source = open_checkpoint(h5);
    CHECK(Tokenizer::from_checkpoint(*source).encode(text) == want);
    CHECK_FALSE(source->tokenizer_model());
  }
  REQUIRE(test::run_moec("export '" + h5.string() + "' -o '" + back.string() + "'").exit_code == 0);
  CHECK(test::read_file(back / "tokenizer.json") == test::read_file(json_file));
  CHECK_FALSE(fs::exists(back / "tokenizer.model"));
  auto eval = test::run_moec("eval '" + h5.string() + "' --text '" + test::text_file("test").string() +
                             "' --max-windows 2 --json");
  CHECK(eval.exit_code == 0);
  CHECK(eval.out.find("\"ppl\"") != std::string::npos);
  // Generation from a text prompt: no BOS (byte-level BPE defines none), and
  // an empty prompt has no tokens at all.
  auto gen = test::run_moec("generate '" + h5.string() + "' --prompt 'The jury said' -n 4");
  CHECK(gen.exit_code == 0);
  CHECK(gen.out.rfind("The jury said", 0) == 0);
  auto empty = test::run_moec("generate '" + h5.string() + "' --prompt '' -n 4");
  CHECK(empty.exit_code == 1);
  CHECK(empty.err.find("empty") != std::string::npos);
}
