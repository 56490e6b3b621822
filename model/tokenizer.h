// Text <-> token ids, from any checkpoint source (HF folder or container):
// sentencepiece when the checkpoint has tokenizer.model (Llama, Mistral,
// Mixtral: their tokenizer.json, when also shipped, is a conversion of it),
// otherwise Hugging Face's tokenizer.json byte-level BPE (Qwen, OLMoE,
// DeepSeek, GPT-2 family; model/bpe_tokenizer.h).
#pragma once
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace moec {

class CheckpointSource;
class BpeTokenizer;

class Tokenizer {
 public:
  // A sentencepiece model; `what` names the source in error messages.
  Tokenizer(std::span<const std::byte> model, const std::string& what);
  explicit Tokenizer(BpeTokenizer bpe);
  // The checkpoint's tokenizer; error naming the checkpoint when it has none.
  static Tokenizer from_checkpoint(const CheckpointSource& source);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;

  // Ids of `text` with no BOS/EOS added. Texts longer than `chunk_bytes`
  // are encoded in pieces on every core, with the same ids as one pass
  // (tests check this). Sentencepiece (which needs ~90 bytes of memory per
  // input byte): each cut replaces a single space between two words, whose
  // "▁word" token the next piece's dummy prefix restores. Byte-level BPE:
  // chunks pre-tokenized apart and joined where their scans agree
  // (model/bpe_tokenizer.h).
  std::vector<int32_t> encode(std::string_view text, size_t chunk_bytes = size_t{1} << 18) const;
  std::string decode(std::span<const int32_t> ids) const;
  // A prompt as the model reads it: `bos_token_id` (the config's) first when
  // the tokenizer defines a BOS (sentencepiece; byte-level BPE has none), then
  // the text's ids. The one place this rule lives (generate, serve, bench).
  std::vector<int32_t> encode_prompt(std::string_view text, int64_t bos_token_id) const;
  // Ids of `text` in which special tokens written out ("<s>", "</s>",
  // "<|im_end|>") become their ids, as transformers tokenizes a rendered
  // chat template (add_special_tokens=False): sentencepiece's control and
  // unknown pieces are cut out of the text first (leftmost, longest) and the
  // text between them encoded on its own; byte-level BPE does this for its
  // added tokens anyway. Nothing is prepended.
  std::vector<int32_t> encode_with_specials(std::string_view text) const;
  // The id of a special token's text ("</s>"), or -1.
  int32_t special_id(std::string_view text) const;
  // A special token's text ("<s>" for sentencepiece's BOS), or "" for an id
  // outside the vocabulary.
  std::string special_text(int32_t id) const;
  int vocab_size() const;
  int bos_id() const;  // -1 when the tokenizer defines none (BPE: the config says)
  int eos_id() const;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;  // one of the two
  std::unique_ptr<BpeTokenizer> bpe_;
  // Sentencepiece's control and unknown pieces (text, id), listed once:
  // what encode_with_specials cuts out of a text.
  std::vector<std::pair<std::string, int32_t>> special_pieces_;
};

}  // namespace moec
