// Hugging Face `tokenizer.json` byte-level BPE tokenizers (Qwen2/Qwen3,
// OLMoE, DeepSeek, GPT-2 family), with the semantics of the `tokenizers`
// library:
//   1. added tokens are cut out of the raw text first (leftmost, longest,
//      exact case, anywhere — even mid-word);
//   2. each text segment between them is normalized (NFC, via ICU, when the
//      file has the NFC normalizer);
//   3. pre-tokenized: the `Split` regex (PCRE2 with UTF + Unicode
//      properties, so \p{L}, \p{N} and \s are Unicode's) and/or ByteLevel's
//      GPT-2 regex; every match is a piece ("Isolated");
//   4. each piece's UTF-8 bytes are mapped to GPT-2's bytes_to_unicode
//      characters and merged by BPE, lowest merge rank first, equal pairs
//      left to right;
//   5. decoding joins the tokens' bytes and decodes them once as UTF-8, each
//      maximal invalid subsequence becoming U+FFFD.
// Supported schema (anything else is refused naming the field): model BPE
// without dropout/unk/byte_fallback/subword affixes; normalizer null or NFC;
// pre_tokenizer Split (Isolated, not inverted), ByteLevel, or a Sequence of
// them; decoder ByteLevel or null. Merges as "a b" strings or ["a", "b"].
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moec {

class BpeTokenizer {
 public:
  // `json_text`: the tokenizer.json contents; `what` names it in errors.
  BpeTokenizer(std::string_view json_text, const std::string& what);
  ~BpeTokenizer();
  BpeTokenizer(BpeTokenizer&&) noexcept;

  // Texts longer than `chunk_bytes` are pre-tokenized and merged in chunks
  // on every core, with the same ids as one pass (see encode_chunks).
  std::vector<int32_t> encode(std::string_view text, size_t chunk_bytes = size_t{1} << 18) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;
  int64_t vocab_size() const;  // the model's vocabulary plus added tokens (largest id + 1)
  // The id of an added token by its content, or -1.
  int32_t added_token_id(std::string_view content) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moec
