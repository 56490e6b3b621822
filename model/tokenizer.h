// Text <-> token ids through sentencepiece, loaded from the tokenizer.model
// bytes of any checkpoint source (HF folder or container).
#pragma once
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace moec {

class CheckpointSource;

class Tokenizer {
 public:
  // `what` names the source in error messages.
  Tokenizer(std::span<const std::byte> model, const std::string& what);
  // The checkpoint's tokenizer; error naming the checkpoint when it has none.
  static Tokenizer from_checkpoint(const CheckpointSource& source);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;

  // Ids of `text` with no BOS/EOS added. Texts longer than `chunk_bytes`
  // are encoded in pieces (sentencepiece needs ~90 bytes of memory per input
  // byte): each cut replaces a single space between two words, whose
  // "▁word" token the next piece's dummy prefix restores, so the ids are
  // the same as encoding the whole text at once (tests check this).
  std::vector<int32_t> encode(std::string_view text, size_t chunk_bytes = size_t{1} << 18) const;
  std::string decode(std::span<const int32_t> ids) const;
  int vocab_size() const;
  int bos_id() const;
  int eos_id() const;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
};

}  // namespace moec
