// One completion choice assembled from a job's events (serve/engine.h): the
// text released as it becomes final, stop sequences, and the OpenAI
// "logprobs" object (tokens, token_logprobs, top_logprobs, text_offset).
//
// Stop sequences: text that could still turn into a stop sequence is held
// back, so a stream never sends text the final completion does not contain;
// when one appears, the text ends before it and stopped() tells the caller to
// cancel the job (finish_reason "stop").
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/text_stream.h"
#include "serve/engine.h"

namespace moec {

class Tokenizer;

// Some tokens' part of the "logprobs" object.
struct LogprobsPart {
  std::vector<std::string> tokens;
  std::vector<std::optional<float>> token_logprobs;  // none: the first token of a prompt given as ids
  std::vector<std::vector<std::pair<std::string, float>>> top;
  std::vector<int64_t> text_offset;
  void append(const LogprobsPart& other);
  nlohmann::json to_json() const;
};

struct CompletionPiece {
  std::string text;
  LogprobsPart logprobs;
  bool empty() const { return text.empty() && logprobs.tokens.empty(); }
};

class CompletionAssembler {
 public:
  // `fed`: the prompt as the model reads it; `bos_added`: fed[0] is a BOS the
  // server prepended to a text prompt (it is not echoed); `prompt_text`: the
  // prompt as the client sent it, when a string.
  CompletionAssembler(const Tokenizer& tokenizer, std::vector<int32_t> fed, bool bos_added,
                      std::optional<std::string> prompt_text, std::vector<std::string> stops, bool logprobs);

  // The echoed prompt: its text and, with logprobs, its tokens' logprobs
  // (`scores`: the engine's PromptLogprobs event, or null).
  CompletionPiece echo(const std::vector<TokenLogprob>* scores);
  CompletionPiece token(int32_t id, const std::optional<TokenLogprob>& logprob);
  // The held-back text, at the end of a job that was not stopped.
  CompletionPiece finish();
  bool stopped() const { return stopped_; }
  int64_t completion_tokens() const { return tokens_; }
  // Everything so far, logprobs trimmed to the tokens that begin inside the
  // final text (non-streaming responses).
  CompletionPiece whole() const;

 private:
  LogprobsPart entry(int32_t previous, int32_t id, std::optional<float> logprob,
                     const std::vector<std::pair<int32_t, float>>& top);
  std::string release(bool final);

  const Tokenizer& tokenizer_;
  std::vector<int32_t> fed_;
  bool bos_added_;
  std::optional<std::string> prompt_text_;
  std::vector<std::string> stops_;
  bool logprobs_;
  TextStream stream_;
  int32_t previous_;
  int64_t tokens_ = 0;
  int64_t offset_ = 0;        // text_offset of the next token
  size_t echo_tokens_ = 0;    // logprobs entries of the echoed prompt
  std::string text_;          // completion text produced (before any stop sequence)
  size_t released_ = 0;       // bytes of text_ handed out
  bool stopped_ = false;
  std::string whole_text_;    // echo + released text
  LogprobsPart whole_logprobs_;
};

}  // namespace moec
