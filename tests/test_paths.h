// Shared helpers for moec's tests: where the fixtures are, scratch folders,
// small synthetic checkpoints, and running the moec binary.
#pragma once
#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

namespace moec::test {

namespace fs = std::filesystem;

// ../shared/fixtures when it exists (the developers' machines and CI), else
// the repo's own copies (models/, data/).
fs::path fixtures_dir();
fs::path fixture_model_dir();
// A Brown split ("train", "validation", "test") from the same place.
fs::path text_file(const std::string& split);
// The reference HDF5 file with logits etc.; empty path when unavailable.
fs::path reference_h5();

// A fresh directory removed (with its contents) when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// A tiny Mixtral config (hidden 16, 2 layers, 4 experts, vocab 32).
nlohmann::json tiny_config();
// The same shape as a dense model (`model_type` mistral or llama, no experts).
nlohmann::json tiny_dense_config(const std::string& model_type = "mistral");
// Writes a complete, valid HF folder for `config` with deterministic bf16
// weights. `edit` may change the tensor list (names, dtypes, shapes) before
// the safetensors file is written.
struct TinyTensor {
  std::string name;
  std::string dtype = "BF16";
  std::vector<int64_t> shape;
};
void write_tiny_checkpoint(const fs::path& dir, const nlohmann::json& config,
                           const std::function<void(std::vector<TinyTensor>&)>& edit = {});

void write_file(const fs::path& path, const std::string& bytes);
std::string read_file(const fs::path& path);

// Replaces a string attribute of the HDF5 object at `path` (to damage files).
void set_h5_string(int64_t file, const char* path, const char* name, const std::string& value);

struct CommandResult {
  int exit_code;
  std::string out;
  std::string err;
};
// Runs the moec binary with `args` (already shell-quoted as needed), after
// `environment` ("NAME=value " assignments, or nothing).
CommandResult run_moec(const std::string& args, const std::string& environment = "");

}  // namespace moec::test
