// Fuzz target: an HTTP request body for POST /v1/completions (and the same
// bytes as one for /v1/chat/completions), checked the way
// moec serve checks it (serve/openai_api.h) before anything is queued: a
// request or an OpenAI error object, never an exception or a crash.
#include <string>
#include <variant>

#include "serve/openai_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  const moec::CompletionLimits limits{4096, 256};
  auto parsed = moec::parse_completion_request(body, limits);
  if (auto* request = std::get_if<moec::CompletionRequest>(&parsed)) {
    if (request->prompts.empty() || request->prompts.size() > moec::kMaxPromptsPerRequest) __builtin_trap();
    for (const auto& prompt : request->prompts) {
      for (int32_t id : prompt.ids)
        if (id < 0 || id >= limits.vocab_size) __builtin_trap();  // ids are checked here, not later
      (void)moec::check_context(int64_t(prompt.ids.size()), *request, limits);
    }
  } else {
    const auto& error = std::get<moec::ApiError>(parsed);
    if (error.status < 400 || error.status > 599 || error.message.empty()) __builtin_trap();
    // serialized as the server does (serve/server.cpp): invalid UTF-8 echoed
    // from the request is replaced, not thrown on
    (void)moec::error_body(error).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  auto chat = moec::parse_chat_request(body, limits);
  if (auto* request = std::get_if<moec::ChatRequest>(&chat)) {
    if (!request->messages.is_array() || request->messages.empty()) __builtin_trap();
    for (const auto& m : request->messages)  // what the template reads: a role, text content (or null)
      if (!m["role"].is_string() || !(m["content"].is_string() || m["content"].is_null())) __builtin_trap();
  } else {
    const auto& error = std::get<moec::ApiError>(chat);
    if (error.status < 400 || error.status > 599 || error.message.empty()) __builtin_trap();
  }
  return 0;
}
