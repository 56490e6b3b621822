// Text of a growing list of token ids, released piece by piece as it becomes
// final. Single tokens cannot be decoded alone: sentencepiece drops a leading
// space at the start of a text, and a token can complete a multi-byte
// character (byte fallback). So a window of the latest ids is decoded with
// the token before it as context, and only text that extends what was
// released already is released; the window slides forward every
// kSlideAfter tokens, so a token costs O(window), not O(text).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace moec {

class Tokenizer;

class TextStream {
 public:
  // `context`: the ids before the stream (a prompt); their text is not
  // released, but the stream's first token reads after them.
  TextStream(const Tokenizer& tokenizer, std::vector<int32_t> context);
  // Adds a token; returns the text that became final with it (often all of
  // the token's text, empty while a character is incomplete).
  std::string push(int32_t id);

 private:
  static constexpr size_t kSlideAfter = 48, kKeep = 16;
  // The text of ids_[anchor..] as it reads after the ids before it; none
  // when the context token does not decode to a prefix of the two together.
  std::optional<std::string> window_text(size_t anchor) const;

  const Tokenizer& tokenizer_;
  std::vector<int32_t> ids_;
  size_t anchor_ = 0;
  std::string text_;  // the window's text released (or given as context) so far
};

// The text token `id` adds after token `previous` (-1: at the start of a
// text); empty when it only starts a multi-byte character. For per-token
// listings (logprobs), where each token needs its own text.
std::string token_text(const Tokenizer& tokenizer, int32_t previous, int32_t id);

}  // namespace moec
