// Fuzz target: a tokenizer.json file (byte-level BPE, model/bpe_tokenizer.h):
// refused in one line, or a tokenizer that encodes and decodes a fixed text
// (added tokens, digits, whitespace runs, non-ASCII) with ids in its vocabulary.
#include <string>

#include "model/bpe_tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  moec::fuzz::accept_or_refuse([&] {
    moec::BpeTokenizer tokenizer(text, "fuzz/tokenizer.json");
    const auto ids = tokenizer.encode("The cat's 42 naïve dogs<|endoftext|>  \n\twent 東京 ok?");
    for (int32_t id : ids)
      if (id < 0 || id >= tokenizer.vocab_size()) __builtin_trap();
    (void)tokenizer.decode(ids);
    (void)tokenizer.decode(ids, /*skip_special_tokens=*/true);
  });
  return 0;
}
