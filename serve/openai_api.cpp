#include "serve/openai_api.h"

#include <fmt/format.h>

namespace moec {

using nlohmann::json;

json error_body(const ApiError& e) {
  return json{{"error",
               {{"message", e.message},
                {"type", e.type},
                {"param", e.param.empty() ? json(nullptr) : json(e.param)},
                {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

namespace {

ApiError invalid(const std::string& param, const std::string& message, const std::string& code = "invalid_value") {
  ApiError e;
  e.message = message;
  e.param = param;
  e.code = code;
  return e;
}

ApiError wrong_type(const std::string& param, const char* expected, const json& value) {
  return invalid(param, fmt::format("'{}' must be {}, got {}", param, expected, value.type_name()), "invalid_type");
}

// A JSON integer (not a float, not a bool) that fits int64.
bool is_integer(const json& v) { return v.is_number_integer(); }

std::optional<ApiError> parse_prompt(const json& p, const CompletionLimits& limits, CompletionRequest& r) {
  auto ids = [&](const json& array) -> std::optional<ApiError> {
    if (array.empty()) return invalid("prompt", "'prompt' must not be an empty list of token ids");
    PromptInput input;
    for (const json& t : array) {
      if (!is_integer(t)) return wrong_type("prompt", "a string or a list of integer token ids", t);
      const int64_t id = t.get<int64_t>();
      if (id < 0 || id >= limits.vocab_size)
        return invalid("prompt", fmt::format("token id {} is outside the vocabulary (0..{})", id, limits.vocab_size - 1),
                       "invalid_token_id");
      input.ids.push_back(int32_t(id));
    }
    r.prompts.push_back(std::move(input));
    return std::nullopt;
  };
  if (p.is_string()) {
    r.prompts.push_back({p.get<std::string>(), {}});
    return std::nullopt;
  }
  if (!p.is_array()) return wrong_type("prompt", "a string or a list of token ids", p);
  if (p.empty()) return invalid("prompt", "'prompt' must not be empty");
  if (!p[0].is_string() && !p[0].is_array()) return ids(p);
  // A batch: strings or token-id lists, one choice each.
  if (p.size() > kMaxPromptsPerRequest)
    return invalid("prompt", fmt::format("{} prompts in one request; at most {}", p.size(), kMaxPromptsPerRequest));
  for (const json& one : p) {
    if (one.is_string()) {
      r.prompts.push_back({one.get<std::string>(), {}});
    } else if (one.is_array()) {
      if (auto e = ids(one)) return e;
    } else {
      return wrong_type("prompt", "a list of strings or of token-id lists", one);
    }
  }
  return std::nullopt;
}

// Reads `key` of `body` when present and not null.
template <typename Check>
std::optional<ApiError> field(const json& body, const char* key, Check check) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  return check(*it);
}

}  // namespace

namespace {

// The body as a JSON object, or the error.
template <typename Json>
std::optional<ApiError> parse_body(const std::string& text, Json& body) {
  try {
    body = Json::parse(text);
  } catch (const std::exception& e) {  // parse_error, and out_of_range for a number like 1e999
    return invalid("", fmt::format("the request body is not valid JSON: {}", e.what()), "invalid_json");
  }
  if (!body.is_object())
    return invalid("", fmt::format("the request body must be a JSON object, got {}", body.type_name()), "invalid_json");
  return std::nullopt;
}

// The fields both APIs share (sampling, stop, stream), and each API's own:
// completions' logprobs (an integer), echo, best_of, suffix; chat's
// max_completion_tokens, logprobs (a boolean) with top_logprobs, tools.
std::optional<ApiError> parse_fields(const json& body, bool chat, CompletionRequest& r) {
  std::optional<ApiError> e;
  auto check = [&](const char* key, auto fn) {
    if (!e) e = field(body, key, fn);
  };
  check("model", [&](const json& v) -> std::optional<ApiError> {
    if (!v.is_string()) return wrong_type("model", "a string", v);
    return std::nullopt;
  });
  check("max_tokens", [&](const json& v) -> std::optional<ApiError> {
    if (!is_integer(v)) return wrong_type("max_tokens", "an integer", v);
    r.max_tokens = v.get<int64_t>();
    return std::nullopt;
  });
  check("temperature", [&](const json& v) -> std::optional<ApiError> {
    if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 2)
      return v.is_number() ? invalid("temperature", "'temperature' must be between 0 and 2")
                           : wrong_type("temperature", "a number", v);
    r.temperature = v.get<float>();
    return std::nullopt;
  });
  check("top_p", [&](const json& v) -> std::optional<ApiError> {
    if (!v.is_number()) return wrong_type("top_p", "a number", v);
    if (!(v.get<double>() > 0 && v.get<double>() <= 1)) return invalid("top_p", "'top_p' must be in (0, 1]");
    r.top_p = v.get<float>();
    return std::nullopt;
  });
  check("seed", [&](const json& v) -> std::optional<ApiError> {
    if (!is_integer(v)) return wrong_type("seed", "an integer", v);
    r.seed = v.is_number_unsigned() ? v.get<uint64_t>() : uint64_t(v.get<int64_t>());
    return std::nullopt;
  });
  check("stop", [&](const json& v) -> std::optional<ApiError> {
    if (v.is_string()) {
      r.stop.push_back(v.get<std::string>());
    } else if (v.is_array()) {
      if (v.size() > 16) return invalid("stop", fmt::format("at most 16 stop sequences, got {}", v.size()));
      for (const json& s : v) {
        if (!s.is_string()) return wrong_type("stop", "a string or a list of strings", s);
        r.stop.push_back(s.get<std::string>());
      }
    } else {
      return wrong_type("stop", "a string or a list of strings", v);
    }
    for (const auto& s : r.stop)
      if (s.empty()) return invalid("stop", "stop sequences must not be empty");
    return std::nullopt;
  });
  check("stream", [&](const json& v) -> std::optional<ApiError> {
    if (!v.is_boolean()) return wrong_type("stream", "a boolean", v);
    r.stream = v.get<bool>();
    return std::nullopt;
  });
  check("stream_options", [&](const json& v) -> std::optional<ApiError> {
    if (!v.is_object()) return wrong_type("stream_options", "an object", v);
    auto it = v.find("include_usage");
    if (it != v.end() && !it->is_null()) {
      if (!it->is_boolean()) return wrong_type("stream_options", "{\"include_usage\": boolean}", *it);
      r.include_usage = it->get<bool>();
    }
    return std::nullopt;
  });
  check("logprobs", [&](const json& v) -> std::optional<ApiError> {
    if (chat) {
      if (!v.is_boolean()) return wrong_type("logprobs", "a boolean", v);
      if (v.get<bool>()) r.logprobs = 0;
      return std::nullopt;
    }
    if (v.is_boolean()) {  // some clients send the chat API's boolean
      if (v.get<bool>()) r.logprobs = 0;
      return std::nullopt;
    }
    if (!is_integer(v)) return wrong_type("logprobs", "an integer", v);
    const int64_t n = v.get<int64_t>();
    if (n < 0 || n > 20) return invalid("logprobs", fmt::format("'logprobs' must be between 0 and 20, got {}", n));
    r.logprobs = int(n);
    return std::nullopt;
  });
  if (chat) {
    check("max_completion_tokens", [&](const json& v) -> std::optional<ApiError> {
      if (!is_integer(v)) return wrong_type("max_completion_tokens", "an integer", v);
      r.max_tokens = v.get<int64_t>();
      return std::nullopt;
    });
    check("top_logprobs", [&](const json& v) -> std::optional<ApiError> {
      if (!is_integer(v)) return wrong_type("top_logprobs", "an integer", v);
      const int64_t n = v.get<int64_t>();
      if (n < 0 || n > 20) return invalid("top_logprobs", fmt::format("'top_logprobs' must be between 0 and 20, got {}", n));
      if (!r.logprobs) return invalid("top_logprobs", "'top_logprobs' needs 'logprobs': true");
      r.logprobs = int(n);
      return std::nullopt;
    });
    check("tools", [&](const json& v) -> std::optional<ApiError> {
      if (!v.is_array()) return wrong_type("tools", "a list", v);
      if (!v.empty()) return invalid("tools", "tool calling is not supported", "unsupported_value");
      return std::nullopt;
    });
  }
  if (!chat) check("echo", [&](const json& v) -> std::optional<ApiError> {
    if (!v.is_boolean()) return wrong_type("echo", "a boolean", v);
    r.echo = v.get<bool>();
    return std::nullopt;
  });
  check("ignore_eos", [&](const json& v) -> std::optional<ApiError> {
    if (!v.is_boolean()) return wrong_type("ignore_eos", "a boolean", v);
    r.ignore_eos = v.get<bool>();
    return std::nullopt;
  });
  for (const char* key : {"n", "best_of"})
    if (!chat || std::string_view(key) == "n")
    check(key, [&](const json& v) -> std::optional<ApiError> {
      if (!is_integer(v)) return wrong_type(key, "an integer", v);
      if (v.get<int64_t>() != 1)
        return invalid(key, fmt::format("'{}' must be 1: moec returns one completion per request", key),
                       "unsupported_value");
      return std::nullopt;
    });
  for (const char* key : {"presence_penalty", "frequency_penalty"})
    check(key, [&](const json& v) -> std::optional<ApiError> {
      if (!v.is_number()) return wrong_type(key, "a number", v);
      if (v.get<double>() != 0)
        return invalid(key, fmt::format("'{}' is not supported (only 0)", key), "unsupported_value");
      return std::nullopt;
    });
  check("logit_bias", [&](const json& v) -> std::optional<ApiError> {
    if (!v.is_object()) return wrong_type("logit_bias", "an object", v);
    if (!v.empty()) return invalid("logit_bias", "'logit_bias' is not supported", "unsupported_value");
    return std::nullopt;
  });
  check("user", [&](const json& v) -> std::optional<ApiError> {
    if (!v.is_string()) return wrong_type("user", "a string", v);
    return std::nullopt;
  });
  if (!chat) check("suffix", [&](const json& v) -> std::optional<ApiError> {
    return invalid("suffix", fmt::format("'suffix' is not supported, got {}", v.type_name()), "unsupported_value");
  });
  return e;
}

std::optional<ApiError> check_lengths(const CompletionRequest& r, const CompletionLimits& limits) {
  if (r.stream && r.prompts.size() > 1)
    return invalid("stream", fmt::format("a stream serves one prompt; this request has {}", r.prompts.size()),
                   "unsupported_value");
  if (r.max_tokens < 0 || (r.max_tokens == 0 && !r.echo))
    return invalid("max_tokens", fmt::format("'max_tokens' must be at least 1 (0 only with echo), got {}", r.max_tokens));
  if (r.max_tokens > limits.ctx)
    return invalid("max_tokens",
                   fmt::format("'max_tokens' is {}, more than the context of {} tokens", r.max_tokens, limits.ctx),
                   "context_length_exceeded");
  return std::nullopt;
}

// A message's content as the chat template reads it: a string; null (an
// assistant turn that only called tools) stays null; a list of text parts
// is joined with newlines, as vLLM does for text-only models.
std::optional<ApiError> normalize_content(nlohmann::ordered_json& message, size_t i) {
  const std::string param = fmt::format("messages[{}].content", i);
  auto it = message.find("content");
  if (it == message.end()) {
    if (message.value("role", "") != "assistant") return invalid(param, fmt::format("'{}' is required", param), "missing_required_parameter");
    message["content"] = nullptr;
    return std::nullopt;
  }
  if (it->is_string() || it->is_null()) return std::nullopt;
  if (!it->is_array()) return invalid(param, fmt::format("'{}' must be a string or a list of parts, got {}", param, it->type_name()), "invalid_type");
  std::string text;
  for (size_t k = 0; k < it->size(); ++k) {
    const auto& part = (*it)[k];
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
      return invalid(param, fmt::format("'{}[{}]' is not a text part ({{\"type\": \"text\", \"text\": ...}}); this model reads text only", param, k),
                     "unsupported_value");
    if (k) text += "\n";
    text += part["text"].get<std::string>();
  }
  *it = text;
  return std::nullopt;
}

}  // namespace

std::variant<CompletionRequest, ApiError> parse_completion_request(const std::string& text,
                                                                   const CompletionLimits& limits) {
  json body;
  if (auto e = parse_body(text, body)) return *e;
  CompletionRequest r;
  if (!body.contains("prompt") || body["prompt"].is_null())
    return invalid("prompt", "'prompt' is required", "missing_required_parameter");
  if (auto e = parse_prompt(body["prompt"], limits, r)) return *e;
  if (auto e = parse_fields(body, false, r)) return *e;
  if (auto e = check_lengths(r, limits)) return *e;
  return r;
}

std::variant<ChatRequest, ApiError> parse_chat_request(const std::string& text, const CompletionLimits& limits) {
  json body;
  if (auto e = parse_body(text, body)) return *e;
  ChatRequest chat;
  if (!body.contains("messages") || body["messages"].is_null())
    return invalid("messages", "'messages' is required", "missing_required_parameter");
  if (auto e = parse_fields(body, true, chat.completion)) return *e;
  if (auto e = check_lengths(chat.completion, limits)) return *e;
  // The messages again, in their keys' order (a template may print them).
  nlohmann::ordered_json ordered;
  parse_body(text, ordered);
  chat.messages = ordered["messages"];
  if (!chat.messages.is_array()) return wrong_type("messages", "a list of messages", body["messages"]);
  if (chat.messages.empty()) return invalid("messages", "'messages' must not be empty");
  for (size_t i = 0; i < chat.messages.size(); ++i) {
    auto& m = chat.messages[i];
    if (!m.is_object()) return wrong_type(fmt::format("messages[{}]", i), "an object", body["messages"][i]);
    if (!m.contains("role") || !m["role"].is_string())
      return invalid(fmt::format("messages[{}].role", i), fmt::format("'messages[{}].role' must be a string", i),
                     "invalid_type");
    if (auto e = normalize_content(m, i)) return *e;
  }
  return chat;
}

std::optional<ApiError> check_context(int64_t prompt_tokens, const CompletionRequest& r,
                                      const CompletionLimits& limits) {
  if (prompt_tokens + r.max_tokens <= limits.ctx) return std::nullopt;
  return invalid("prompt",
                 fmt::format("this model's context is {} tokens, but {} were requested ({} in the prompt, {} for the "
                             "completion); shorten the prompt or lower max_tokens",
                             limits.ctx, prompt_tokens + r.max_tokens, prompt_tokens, r.max_tokens),
                 "context_length_exceeded");
}

}  // namespace moec
