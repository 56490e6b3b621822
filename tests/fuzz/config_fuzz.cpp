// Fuzz target: config.json → the typed config of any architecture moec knows,
// then everything derived from it before a checkpoint is read: the list of
// expected tensors and their shapes (whose sizes a lying config could blow up).
#include <nlohmann/json.hpp>

#include "io/model_config.h"
#include "io/tensor_names.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto json = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;
  moec::fuzz::accept_or_refuse([&] {
    moec::ModelConfig config = moec::parse_model_config(json, "fuzz/config.json");
    for (const moec::TensorKey& key : moec::expected_tensors(config)) {
      for (int64_t d : moec::expected_shape(config, key))
        if (d <= 0) __builtin_trap();  // a valid config never yields an empty or negative dimension
    }
  });
  return 0;
}
