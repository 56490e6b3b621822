// Fuzz target: text and token ids through both tokenizers moec uses — the
// shipped model's sentencepiece tokenizer.model and a byte-level BPE
// tokenizer.json (tests/fuzz/synthetic_tokenizer.h). Input byte 0 picks what
// the rest is: text to encode (then decode the ids again), or int32 ids to
// decode. Decoding any ids must be refused or give a string; encoding any
// bytes must give ids inside the vocabulary, the same whether the text is
// encoded in one pass or in chunks of 1..64 bytes (bits 2-7 of byte 0).
#include <cstring>
#include <vector>

#include "io/error.h"
#include "model/bpe_tokenizer.h"
#include "model/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/synthetic_tokenizer.h"
#include "tests/test_paths.h"

namespace {

const moec::Tokenizer& sentencepiece_model() {
  static const moec::Tokenizer tokenizer = [] {
    const std::string bytes = moec::test::read_file(moec::test::fixture_model_dir() / "tokenizer.model");
    return moec::Tokenizer(std::as_bytes(std::span(bytes)), "tokenizer.model");
  }();
  return tokenizer;
}

const moec::Tokenizer& bpe() {
  static const moec::Tokenizer tokenizer(
      moec::BpeTokenizer(moec::fuzz::synthetic_tokenizer_json(), "synthetic tokenizer.json"));
  return tokenizer;
}

// Small chunks make the cutting and joining logic run too; it must give
// the ids of one pass (a difference is a finding).
void round_trip(const moec::Tokenizer& tokenizer, std::string_view text, size_t chunk_bytes) {
  const auto ids = tokenizer.encode(text);
  for (int32_t id : ids)
    if (id < 0 || id >= tokenizer.vocab_size()) __builtin_trap();
  if (tokenizer.encode(text, chunk_bytes) != ids) __builtin_trap();
  (void)tokenizer.decode(ids);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const moec::Tokenizer& tokenizer = (data[0] & 1) ? bpe() : sentencepiece_model();
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  moec::fuzz::accept_or_refuse([&] {
    if (data[0] & 2) {
      std::vector<int32_t> ids(rest.size() / 4);
      if (!ids.empty()) std::memcpy(ids.data(), rest.data(), ids.size() * 4);
      (void)tokenizer.decode(ids);
    } else {
      round_trip(tokenizer, rest, 1 + (data[0] >> 2));
    }
  });
  return 0;
}
