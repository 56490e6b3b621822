#include "tests/test_paths.h"

#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <cstring>
#include <sstream>

#include "io/dtype.h"
#include "io/model_config.h"
#include "io/safetensors_writer.h"
#include "io/tensor_names.h"

namespace moec::test {

fs::path fixtures_dir() {
  fs::path shared = fs::path(MOEC_SOURCE_DIR).parent_path() / "shared" / "fixtures";
  if (fs::exists(shared / "tiny-mixtral-brown" / "model.safetensors")) return shared;
  return {};
}

fs::path fixture_model_dir() {
  fs::path shared = fixtures_dir();
  if (!shared.empty()) return shared / "tiny-mixtral-brown";
  return fs::path(MOEC_SOURCE_DIR) / "models" / "tiny-mixtral-brown";
}

fs::path text_file(const std::string& split) {
  fs::path shared = fixtures_dir();
  const std::string name = "brown." + split + ".txt";
  return shared.empty() ? fs::path(MOEC_SOURCE_DIR) / "data" / "brown" / name : shared / "text" / name;
}

void set_h5_string(int64_t file, const char* path, const char* name, const std::string& value) {
  hid_t object = H5Oopen(hid_t(file), path, H5P_DEFAULT);
  H5Adelete(object, name);
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, value.size() + 1);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(object, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(attr, type, value.c_str());
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
  H5Oclose(object);
}

fs::path reference_h5() {
  fs::path shared = fixtures_dir();
  fs::path ref = shared / "reference" / "tiny-mixtral-brown.h5";
  return !shared.empty() && fs::exists(ref) ? ref : fs::path();
}

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "moec-test-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

nlohmann::json tiny_dense_config(const std::string& model_type) {
  nlohmann::json config = tiny_config();
  config["model_type"] = model_type;
  config.erase("num_local_experts");
  config.erase("num_experts_per_tok");
  return config;
}

nlohmann::json tiny_config() {
  return {{"model_type", "mixtral"},     {"vocab_size", 32},          {"hidden_size", 16},
          {"intermediate_size", 24},     {"num_hidden_layers", 2},    {"num_attention_heads", 4},
          {"num_key_value_heads", 2},    {"num_local_experts", 4},    {"num_experts_per_tok", 2},
          {"rms_norm_eps", 1e-5},        {"rope_theta", 10000.0},     {"max_position_embeddings", 64},
          {"tie_word_embeddings", false}, {"hidden_act", "silu"}};
}

void write_tiny_checkpoint(const fs::path& dir, const nlohmann::json& config,
                           const std::function<void(std::vector<TinyTensor>&)>& edit) {
  fs::create_directories(dir);
  write_file(dir / "config.json", config.dump(2));
  ModelConfig parsed = parse_model_config(config, "tiny config");
  const ArchitectureNames& arch = *find_architecture(parsed.model_type);
  std::vector<TinyTensor> tensors;
  for (const TensorKey& key : expected_tensors(parsed))
    tensors.push_back({hf_name(arch, key), "BF16", expected_shape(parsed, key)});
  if (edit) edit(tensors);
  std::vector<TensorSpec> specs;
  for (const auto& t : tensors) specs.push_back({t.name, *dtype_from_name(t.dtype), t.shape});
  SafetensorsWriter writer(dir / "model.safetensors", specs);
  uint32_t state = 12345;
  for (const auto& spec : specs) {
    std::vector<std::byte> bytes(spec.nbytes());
    for (size_t i = 0; i + 1 < bytes.size(); i += 2) {  // small bf16 values, deterministic
      state = state * 1664525u + 1013904223u;
      uint16_t v = f32_to_bf16((float(state >> 8) / float(1 << 24) - 0.5f) * 0.1f);
      std::memcpy(&bytes[i], &v, 2);
    }
    writer.write(spec.name, bytes);
  }
  writer.finish();
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

CommandResult run_moec(const std::string& args, const std::string& environment) {
  TempDir tmp;
  std::string command = environment + "'" + MOEC_BINARY + "' " + args + " >'" + (tmp / "out").string() + "' 2>'" +
                        (tmp / "err").string() + "'";
  int status = std::system(command.c_str());
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return {code, read_file(tmp / "out"), read_file(tmp / "err")};
}

}  // namespace moec::test
