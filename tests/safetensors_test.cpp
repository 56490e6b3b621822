#include <catch2/catch.hpp>

#include <cstring>

#include "io/error.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "tests/test_paths.h"

using namespace moec;
using test::TempDir;

namespace {

std::vector<std::byte> pattern_bytes(size_t n, int seed) {
  std::vector<std::byte> bytes(n);
  for (size_t i = 0; i < n; ++i) bytes[i] = std::byte((i * 31 + seed) & 0xff);
  return bytes;
}

}  // namespace

TEST_CASE("safetensors writer output reads back exactly", "[safetensors]") {
  TempDir tmp;
  std::vector<TensorSpec> specs{{"b", DType::BF16, {3, 5}}, {"a", DType::F32, {7}}, {"empty", DType::F16, {0, 4}},
                                {"ids", DType::I64, {2}},    {"s", DType::U8, {}}};
  std::vector<std::vector<std::byte>> data;
  {
    SafetensorsWriter writer(tmp / "x.safetensors", specs);
    for (size_t i = 0; i < specs.size(); ++i) {
      data.push_back(pattern_bytes(specs[i].nbytes(), int(i)));
      writer.write(specs[i].name, data.back());
    }
    writer.finish();
  }
  SafetensorsFile file(tmp / "x.safetensors");
  REQUIRE(file.entries().size() == specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const SafetensorsEntry* e = file.find(specs[i].name);
    REQUIRE(e);
    CHECK(e->dtype == specs[i].dtype);
    CHECK(e->shape == specs[i].shape);
    auto bytes = file.bytes(*e);
    REQUIRE(bytes.size() == data[i].size());
    CHECK(std::equal(bytes.begin(), bytes.end(), data[i].begin()));
  }
  CHECK(file.metadata().at("format") == "pt");
  // The header is padded so the data area starts 8-byte aligned.
  std::string raw = test::read_file(tmp / "x.safetensors");
  uint64_t header = 0;
  std::memcpy(&header, raw.data(), 8);
  CHECK((8 + header) % 8 == 0);
  CHECK(file.find("missing") == nullptr);
}

TEST_CASE("a zero-length tensor may share its offset with the next tensor", "[safetensors]") {
  TempDir tmp;
  std::string header = R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                            "b": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}})";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = char((header.size() >> (8 * i)) & 0xff);
  test::write_file(tmp / "z.safetensors", bytes + header + std::string(8, '\0'));
  SafetensorsFile file(tmp / "z.safetensors");
  CHECK(file.find("b")->shape == std::vector<int64_t>{0});
}

TEST_CASE("safetensors writer refuses inconsistent writes", "[safetensors]") {
  TempDir tmp;
  std::vector<TensorSpec> specs{{"a", DType::F32, {2}}, {"b", DType::F32, {2}}};
  auto eight = pattern_bytes(8, 1);
  SECTION("out of order") {
    SafetensorsWriter writer(tmp / "x.safetensors", specs);
    CHECK_THROWS_WITH(writer.write("b", eight), Catch::Contains("out of order"));
  }
  SECTION("wrong size") {
    SafetensorsWriter writer(tmp / "x.safetensors", specs);
    CHECK_THROWS_WITH(writer.write("a", pattern_bytes(4, 1)), Catch::Contains("4 bytes given"));
  }
  SECTION("unfinished") {
    SafetensorsWriter writer(tmp / "x.safetensors", specs);
    writer.write("a", eight);
    CHECK_THROWS_WITH(writer.finish(), Catch::Contains("'b': never written"));
  }
}

TEST_CASE("the fixture's safetensors file validates and is zero-copy", "[safetensors]") {
  SafetensorsFile file(test::fixture_model_dir() / "model.safetensors");
  CHECK(file.entries().size() == 127);
  const SafetensorsEntry* w1 = file.find("model.layers.0.block_sparse_moe.experts.3.w1.weight");
  REQUIRE(w1);
  CHECK(w1->dtype == DType::BF16);
  CHECK(w1->shape == std::vector<int64_t>{512, 256});
  auto a = file.bytes(*w1);
  auto b = file.bytes(*w1);
  CHECK(a.data() == b.data());  // a view, not a copy
}
