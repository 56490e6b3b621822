// Writes the fuzz targets' seed corpora (run by scripts/make-fuzz-corpus.sh,
// whose output is committed under tests/fuzz/corpus/<target>/seed-*): small
// valid inputs of every kind each target reads, written by moec's own writers,
// plus a few malformed variants that reach the validation paths. Nothing here
// is hand-edited binary; rerunning the script reproduces the corpus.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "io/container.h"
#include "io/dtype.h"
#include "quant/format.h"
#include "quant/gptq.h"
#include "quant/sub1.h"
#include "quant/tensor_view.h"
#include "quant/tunstall.h"
#include "tests/fuzz/sharded_model.h"
#include "tests/fuzz/synthetic_tokenizer.h"
#include "tests/fuzz/tensor_record.h"
#include "tests/test_paths.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace moec;

void write(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}
void write(const fs::path& path, const std::vector<uint8_t>& bytes) {
  write(path, std::string(bytes.begin(), bytes.end()));
}

// ----------------------------------------------------------------- configs

json tiny_config(const std::string& model_type) {
  json c = test::tiny_config();
  c["model_type"] = model_type;
  if (model_type == "mistral" || model_type == "llama") {
    c.erase("num_local_experts");
    c.erase("num_experts_per_tok");
  } else if (model_type != "mixtral") {
    c.erase("num_local_experts");
    c["num_experts"] = 4;
    c["moe_intermediate_size"] = 24;
  }
  if (model_type == "qwen2_moe") {
    c["shared_expert_intermediate_size"] = 32;
    c["mlp_only_layers"] = json::array({1});
    c["decoder_sparse_step"] = 1;
    c["norm_topk_prob"] = false;
  }
  if (model_type == "qwen3_moe") {
    c["head_dim"] = 8;
    c["norm_topk_prob"] = true;
  }
  if (model_type == "olmoe") c["clip_qkv"] = nullptr;
  return c;
}

void config_seeds(const fs::path& out) {
  for (const char* type : {"mixtral", "mistral", "llama", "qwen2_moe", "qwen3_moe", "olmoe"})
    write(out / fmt::format("seed-{}.json", type), tiny_config(type).dump(1));
  json bad = tiny_config("mixtral");
  bad["num_hidden_layers"] = 65536;
  bad["num_local_experts"] = 65536;
  write(out / "seed-huge-counts.json", bad.dump());
  bad = tiny_config("qwen2_moe");
  bad["mlp_only_layers"] = json::array({0, 7, -1});
  write(out / "seed-bad-dense-layers.json", bad.dump());
  write(out / "seed-unknown-type.json", json{{"model_type", "switch_transformers"}}.dump());
  const fs::path shipped = test::fixture_model_dir() / "config.json";
  write(out / "seed-shipped.json", test::read_file(shipped));
}

// ------------------------------------------------------------- safetensors

void safetensors_seeds(const fs::path& out, const fs::path& scratch) {
  test::write_tiny_checkpoint(scratch / "tiny", test::tiny_config());
  const std::string tiny = test::read_file(scratch / "tiny" / "model.safetensors");
  write(out / "seed-tiny-mixtral.safetensors", tiny);
  write(out / "seed-truncated.safetensors", tiny.substr(0, tiny.size() / 2));
  auto with_header = [](const std::string& header, const std::string& data) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[size_t(i)] = char((header.size() >> (8 * i)) & 0xff);
    return s + header + data;
  };
  write(out / "seed-empty.safetensors", with_header("{}", ""));
  write(out / "seed-dtypes.safetensors",
        with_header(json{{"__metadata__", {{"format", "pt"}}},
                         {"a", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 8}}}},
                         {"b", {{"dtype", "F16"}, {"shape", {1, 2}}, {"data_offsets", {8, 12}}}},
                         {"c", {{"dtype", "I64"}, {"shape", json::array()}, {"data_offsets", {12, 20}}}},
                         {"d", {{"dtype", "BF16"}, {"shape", {0, 3}}, {"data_offsets", {20, 20}}}}}
                        .dump(),
                    std::string(20, '\x3f')));
  write(out / "seed-overlap.safetensors",
        with_header(json{{"a", {{"dtype", "U8"}, {"shape", {4}}, {"data_offsets", {0, 4}}}},
                         {"b", {{"dtype", "U8"}, {"shape", {4}}, {"data_offsets", {2, 6}}}}}
                        .dump(),
                    std::string(6, 'x')));
}

// ------------------------------------------------------------- shard index

void shard_index_seeds(const fs::path& out, const fs::path& scratch) {
  const std::string index = fuzz::write_sharded_model(scratch / "sharded");
  write(out / "seed-valid.json", index);
  json j = json::parse(index);
  auto& map = j["weight_map"];
  const std::string first = map.begin().key();
  json moved = j;
  moved["weight_map"][first] = "model-00002-of-00002.safetensors";
  write(out / "seed-wrong-shard.json", moved.dump());
  json escape = j;
  escape["weight_map"][first] = "../model-00001-of-00002.safetensors";
  write(out / "seed-escape.json", escape.dump());
  json extra = j;
  extra["weight_map"]["model.layers.9.mlp.gate.weight"] = "model-00001-of-00002.safetensors";
  write(out / "seed-extra-tensor.json", extra.dump());
  json config_as_shard = j;
  config_as_shard["weight_map"][first] = "config.json";
  write(out / "seed-config-as-shard.json", config_as_shard.dump());
}

// -------------------------------------------------------------- containers

// One container of the tiny model with every expert in `format` ("" = dense).
fs::path write_container(const fs::path& hf_dir, const fs::path& path, const std::string& format,
                         bool with_tokenizer) {
  auto source = open_checkpoint(hf_dir);
  ContainerWriter writer(path, /*overwrite=*/true, source->config_json(), Provenance{"make_seeds", "", "", json::array(), nullptr});
  if (with_tokenizer) {
    const std::string tok = fuzz::synthetic_tokenizer_json();
    writer.write_tokenizer_json(std::as_bytes(std::span(tok)));
  }
  const ArchitectureNames& arch = *find_architecture(source->config().model_type);
  const TunstallDictionary* dictionary = nullptr;  // one per model, from its first expert (as quantize does)
  for (const TensorInfo& t : source->tensors()) {
    TensorData data = source->read(t.key);
    const bool expert = component_of(t.key.role) == Component::Experts;
    if (format.empty() || !expert) {
      writer.write_dense(t, hf_name(arch, t.key), data.bytes());
      continue;
    }
    const std::vector<float> w = data.to_f32();
    const QuantFormat f = QuantFormat::parse(format);
    const QuantizedMatrix m = quantize_rtn(w.data(), t.shape[0], t.shape[1], f);
    TensorInfo info = t;
    if (f.kind == GridKind::Sub1) {
      if (!dictionary) dictionary = &shared_dictionary(count_trits(trits_of(m)));
      const Sub1Matrix coded = encode_sub1(m, *dictionary);
      writer.write_encoded(info, hf_name(arch, t.key), describe_sub1(coded, info));
    } else {
      writer.write_encoded(info, hf_name(arch, t.key), describe_quantized(m, info));
    }
  }
  writer.commit();
  return path;
}

std::vector<fs::path> container_seeds(const fs::path& out, const fs::path& scratch) {
  json config = test::tiny_config();
  config["num_hidden_layers"] = 1;
  test::write_tiny_checkpoint(scratch / "for-containers", config);
  std::vector<fs::path> written;
  fs::create_directories(out);
  const std::map<std::string, std::string> formats{
      {"dense", ""}, {"q4g8", "q4g8"}, {"q3g0", "q3g0"}, {"ternary-qmoe", "ternary-qmoe"},
      {"ternary-sym", "ternary-sym"}, {"sub1", "sub1"}};
  for (const auto& [name, format] : formats)
    written.push_back(write_container(scratch / "for-containers", out / ("seed-" + name + ".h5"), format,
                                      /*with_tokenizer=*/name == "dense"));
  return written;
}

// One record per kind of stored tensor in the containers, plus lying
// variants of the sub1 one (counts, offsets, scale).
void tensor_view_seeds(const fs::path& out, const std::vector<fs::path>& containers) {
  std::map<std::string, int> taken;
  for (const fs::path& path : containers) {
    ContainerReader reader(path);
    for (const TensorInfo& t : reader.tensors()) {
      if (t.shape.size() != 2) continue;
      const std::string kind = t.label();
      if (taken[kind]++ >= 2) continue;
      TensorData data = reader.read(t.key);
      fuzz::TensorRecord r{t.encoding, t.format, t.shape[0], t.shape[1], {}};
      if (!t.encoded()) {
        auto b = data.bytes();
        r.parts.push_back({"data", std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(b.data()),
                                                        reinterpret_cast<const uint8_t*>(b.data()) + b.size())});
      }
      for (const TensorPart& p : t.parts) {
        auto b = data.part(p.name);
        r.parts.push_back({p.name, std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(b.data()),
                                                        reinterpret_cast<const uint8_t*>(b.data()) + b.size())});
      }
      write(out / fmt::format("seed-{}-{}.bin", kind, taken[kind]), fuzz::write_record(r));
      if (t.encoding == "sub1" && taken[kind] == 1) {
        fuzz::TensorRecord lie = r;
        for (auto& p : lie.parts)
          if (p.name == "trit_counts") std::fill(p.bytes.begin(), p.bytes.end(), 0);
        write(out / "seed-sub1-zero-counts.bin", fuzz::write_record(lie));
        lie = r;
        for (auto& p : lie.parts)
          if (p.name == "blocks" && p.bytes.size() >= 8) p.bytes[4] ^= 1;
        write(out / "seed-sub1-shifted-block.bin", fuzz::write_record(lie));
      }
    }
  }
}

// --------------------------------------------------- tokenizers, requests

void tokenizer_seeds(const fs::path& out) {
  const std::vector<std::string> texts{
      "The jury said it did find that many of Atlanta's registration practices were well done.",
      "  leading spaces, tabs\tand\nnew lines\r\n", "naïve café 東京 1234567 <|endoftext|> <|im_start|>x",
      std::string("\xff\xfe invalid \xc3 utf-8 \xe2\x82", 19), ""};
  int i = 0;
  for (const std::string& text : texts)
    for (char mode : {'\0', '\1'}) write(out / fmt::format("seed-text-{}-{}.bin", i, int(mode)), mode + text), ++i;
  std::string ids(1, '\2');
  for (int32_t id : {1, 2, 3, 500, 4095, 4096, -1, 2147483647}) ids.append(reinterpret_cast<const char*>(&id), 4);
  write(out / "seed-ids-sentencepiece.bin", ids);
  ids[0] = '\3';
  write(out / "seed-ids-bpe.bin", ids);
}

void tokenizer_json_seeds(const fs::path& out) {
  const std::string tok = fuzz::synthetic_tokenizer_json();
  write(out / "seed-synthetic.json", tok);
  json j = json::parse(tok);
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["normalizer"] = nullptr;
  write(out / "seed-gpt2-style.json", j.dump());
  j["model"]["merges"] = json::array({json::array({"t", "h"}), json::array({"th", "e"})});
  write(out / "seed-pair-merges.json", j.dump());
  j["model"]["byte_fallback"] = true;
  write(out / "seed-unsupported.json", j.dump());
}

void request_seeds(const fs::path& out) {
  const std::vector<json> requests{
      {{"prompt", "The jury"}, {"max_tokens", 8}},
      {{"model", "m"}, {"prompt", json::array({1, 2, 3})}, {"max_tokens", 4}, {"temperature", 0}, {"seed", 7}},
      {{"prompt", json::array({"a", "b"})}, {"max_tokens", 2}, {"stop", json::array({"\n", "."})}, {"top_p", 0.9}},
      {{"prompt", "x"}, {"stream", true}, {"stream_options", {{"include_usage", true}}}, {"logprobs", 5},
       {"echo", true}, {"max_tokens", 0}},
      {{"prompt", json::array({json::array({1, 2}), json::array({3})})}, {"n", 1}, {"best_of", 1},
       {"presence_penalty", 0}, {"frequency_penalty", 0}, {"logit_bias", json::object()}, {"user", "u"},
       {"suffix", nullptr}, {"ignore_eos", true}},
      {{"prompt", "x"}, {"max_tokens", -1}},
      {{"prompt", json::array({99999})}},
      {{"prompt", 5}, {"stop", json::array({1})}},
      // /v1/chat/completions bodies (the target checks every body both ways)
      {{"messages", json::array({{{"role", "system"}, {"content", "s"}}, {{"role", "user"}, {"content", "hi"}}})},
       {"max_completion_tokens", 4}, {"logprobs", true}, {"top_logprobs", 2}, {"stream", true}},
      {{"messages", json::array({{{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", "a"}}})}},
                                 {{"role", "assistant"}, {"content", nullptr}}})},
       {"tools", json::array()}}};
  int i = 0;
  for (const json& r : requests) write(out / fmt::format("seed-{}.json", i++), r.dump());
  write(out / "seed-not-json.txt", std::string("{\"prompt\": \"unterminated"));
}

// The chat templates and feature cases the renderer is tested on.
void chat_template_seeds(const fs::path& out) {
  const fs::path data = fs::path(MOEC_SOURCE_DIR) / "tests/data/chat_templates";
  int i = 0;
  std::vector<fs::path> templates;
  for (const auto& f : fs::directory_iterator(data))
    if (f.path().extension() == ".jinja") templates.push_back(f.path());
  std::sort(templates.begin(), templates.end());
  for (const fs::path& t : templates) {
    std::ifstream in(t, std::ios::binary);
    write(out / fmt::format("seed-{}.jinja", i++),
          std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
  }
  std::ifstream in(data / "features.json");
  for (const json& c : json::parse(in)) write(out / fmt::format("seed-{}.jinja", i++), c["template"].get<std::string>());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR SCRATCH_DIR\n", argv[0]);
    return 2;
  }
  const fs::path out = argv[1], scratch = argv[2];
  try {
    config_seeds(out / "config");
    safetensors_seeds(out / "safetensors", scratch);
    shard_index_seeds(out / "shard_index", scratch);
    tensor_view_seeds(out / "tensor_view", container_seeds(out / "container", scratch));
    tokenizer_seeds(out / "tokenizer");
    tokenizer_json_seeds(out / "tokenizer_json");
    request_seeds(out / "request");
    chat_template_seeds(out / "chat_template");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
