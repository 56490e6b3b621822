// Fuzz target: model.safetensors.index.json of a sharded Hugging Face folder.
// The folder (config.json and two real shards, tests/fuzz/sharded_model.h) is
// written once per process; each input becomes its index, and the folder is
// opened as a checkpoint: the index must name files inside the folder only,
// agree with the shards tensor for tensor, and every tensor must then read.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "io/hf_checkpoint.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/sharded_model.h"

namespace {

namespace fs = std::filesystem;

const fs::path& folder() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("moec-fuzz-shards-" + std::to_string(::getpid()));
    moec::fuzz::write_sharded_model(d);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(fs::temp_directory_path() / ("moec-fuzz-shards-" + std::to_string(::getpid())), ec);
    });
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fs::path& dir = folder();
  {
    std::ofstream index(dir / "model.safetensors.index.json", std::ios::binary | std::ios::trunc);
    index.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  }
  moec::fuzz::accept_or_refuse([&] {
    moec::HfCheckpoint checkpoint(dir);
    for (const moec::TensorInfo& t : checkpoint.tensors()) (void)checkpoint.read(t.key).to_f32();
    (void)checkpoint.files();
  });
  return 0;
}
