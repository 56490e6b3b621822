// The OpenAI completions API as moec serves it: a request body checked field
// by field into a CompletionRequest, and the error object every failure
// returns ({"error": {"message", "type", "param", "code"}}), following the
// OpenAI API reference (legacy /v1/completions).
//
// Accepted fields: model, prompt (a string, an array of token ids, or an
// array holding one of those), max_tokens (default 16), temperature (default
// 1), top_p, seed, stop (a string or up to 16), stream, stream_options
// ({"include_usage"}), logprobs (0..20), echo, n and best_of (1 only),
// presence/frequency_penalty (0 only), logit_bias (empty only), user, suffix
// (null only), and llama.cpp's ignore_eos. A list of prompts gets one choice
// per prompt (not with stream). Other fields are ignored, as newer clients send fields older
// servers do not know; a known field of the wrong type is an error.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace moec {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the offending field, or empty
  std::string code;   // a short machine-readable reason, or empty
};
// {"error": {...}}; param and code are null when empty.
nlohmann::json error_body(const ApiError& error);

// One prompt: a string (BOS is prepended when tokenized) or token ids (used
// as given).
struct PromptInput {
  std::optional<std::string> text;
  std::vector<int32_t> ids;
};

// Prompts per request: a batch (a list of strings or of token-id lists, as
// lm-evaluation-harness sends with batch_size > 1) gets one choice each.
constexpr size_t kMaxPromptsPerRequest = 64;

struct CompletionRequest {
  std::vector<PromptInput> prompts;  // at least one; several only without stream
  int64_t max_tokens = 16;
  float temperature = 1.0f;
  float top_p = 1.0f;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::optional<int> logprobs;
  bool echo = false;
  bool ignore_eos = false;  // llama.cpp's extension: generate max_tokens even past EOS (benchmarks)
};

// A /v1/chat/completions request: `messages` (each an object with a string
// "role"; "content" a string, null, or a list of text parts, joined with
// newlines) and the completion fields above, where max_completion_tokens is
// max_tokens's newer name, logprobs is a boolean and top_logprobs (0..20)
// the alternatives per token; echo, best_of and suffix do not exist, and a
// non-empty `tools` is refused (no tool calling). The prompt is the chat
// template's rendering of the messages, made by the server.
struct ChatRequest {
  nlohmann::ordered_json messages;
  CompletionRequest completion;  // prompts empty
};

// Limits the request is checked against.
struct CompletionLimits {
  int64_t vocab_size = 0;
  int64_t ctx = 0;  // positions per sequence
};

// The request, or the error to answer with. Token ids are checked against
// the vocabulary here; the prompt's length after tokenization is checked by
// check_context().
std::variant<CompletionRequest, ApiError> parse_completion_request(const std::string& body,
                                                                   const CompletionLimits& limits);
std::variant<ChatRequest, ApiError> parse_chat_request(const std::string& body, const CompletionLimits& limits);
// Each prompt plus max_tokens must fit the context.
std::optional<ApiError> check_context(int64_t prompt_tokens, const CompletionRequest& request,
                                      const CompletionLimits& limits);

}  // namespace moec
