// Fuzz target: a moec container (HDF5) as bytes. Opening validates the file;
// then everything a stage would touch is read: every tensor (dense widened to
// f32, encoded ones viewed and decoded like `moec inspect` does) and the
// tokenizer files. Seeds are real containers (dense, k-bit, ternary, sub1).
#include "io/container.h"
#include "model/tensor_check.h"
#include "quant/tunstall.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moec::fuzz::MemFile file({data, size});
  moec::fuzz::accept_or_refuse([&] {
    moec::ContainerReader reader(file.path());
    moec::check_encoded_tensors(reader);
    (void)moec::verify_all_tensors(reader);  // reads and decodes every tensor, as `moec inspect --verify`
    (void)reader.tokenizer_model();
    (void)reader.tokenizer_json();
  });
  if (moec::shared_dictionary_count() > 4) moec::release_shared_dictionaries();  // no view outlives the input
  return 0;
}
