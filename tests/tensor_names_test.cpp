#include <catch2/catch.hpp>

#include <set>

#include "io/error.h"
#include "io/model_config.h"
#include "io/tensor_names.h"
#include "tests/test_paths.h"

using namespace moec;

TEST_CASE("every Mixtral tensor maps to a unique HF name and back", "[names]") {
  ModelConfig config = parse_model_config(test::tiny_config(), "tiny");
  const ArchitectureNames& arch = *find_architecture("mixtral");
  std::set<std::string> hf_names, logical;
  auto keys = expected_tensors(config);
  CHECK(keys.size() == 1 + 2 * (7 + 4 * 3) + 2);
  for (const TensorKey& key : keys) {
    std::string hf = hf_name(arch, key);
    REQUIRE(parse_hf_name(arch, hf) == key);
    REQUIRE(parse_logical_name(logical_name(key)) == key);
    hf_names.insert(hf);
    logical.insert(logical_name(key));
  }
  CHECK(hf_names.size() == keys.size());
  CHECK(logical.size() == keys.size());
  CHECK(hf_name(arch, {TensorRole::ExpertW2, 3, 5}) == "model.layers.3.block_sparse_moe.experts.5.w2.weight");
  CHECK(logical_name({TensorRole::ExpertW2, 3, 5}) == "layers.3.experts.5.w2");
}

TEST_CASE("names that only look like Mixtral tensors are rejected", "[names]") {
  const ArchitectureNames& arch = *find_architecture("mixtral");
  for (const char* bad : {"model.layers.01.input_layernorm.weight", "model.layers.-1.input_layernorm.weight",
                          "model.layers.x.input_layernorm.weight", "model.layers.0.input_layernorm.weight.extra",
                          "model.layers.0.block_sparse_moe.experts.3.w4.weight", "lm_head.bias", ""})
    CHECK_FALSE(parse_hf_name(arch, bad));
  CHECK_FALSE(find_architecture("deepseek_v3"));
}

TEST_CASE("expected shapes follow the config", "[names]") {
  ModelConfig c = parse_model_config(test::tiny_config(), "tiny");
  CHECK(expected_shape(c, {TensorRole::AttnK, 0}) == std::vector<int64_t>{8, 16});  // 2 kv heads x head_dim 4
  CHECK(expected_shape(c, {TensorRole::ExpertW2, 1, 3}) == std::vector<int64_t>{16, 24});
  CHECK(expected_shape(c, {TensorRole::Router, 1}) == std::vector<int64_t>{4, 16});
}

TEST_CASE("eos_token_id: an integer or a list of them (Llama 3.1 lists three)", "[names]") {
  nlohmann::json j = test::tiny_config();
  CHECK(parse_model_config(j, "tiny").eos_token_ids == std::vector<int64_t>{2});
  j["eos_token_id"] = {128001, 128008, 128009};
  const ModelConfig c = parse_model_config(j, "tiny");
  CHECK(c.eos_token_id == 128001);
  CHECK(c.eos_token_ids == std::vector<int64_t>{128001, 128008, 128009});
  j["eos_token_id"] = nlohmann::json::array();
  CHECK_THROWS_AS(parse_model_config(j, "tiny"), Error);
  j["eos_token_id"] = {1, "two"};
  CHECK_THROWS_WITH(parse_model_config(j, "tiny"), Catch::Contains("eos_token_id"));
}
