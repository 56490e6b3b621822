#include "serve/chat_template.h"

#include <fmt/format.h>

#include "io/checkpoint.h"
#include "io/error.h"
#include "io/text_file.h"
#include "model/tokenizer.h"

namespace moec {

using Json = nlohmann::ordered_json;

namespace {

// A special token as tokenizer_config.json writes it: a string, or an
// AddedToken object {"content": ..., ...}; "" when absent or null.
std::string token_text(const Json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return "";
}

// The template text: a string, or the entry named "default" of a list of
// {name, template} (transformers' multi-template form).
std::optional<std::string> template_text(const Json& value, const std::string& where) {
  if (value.is_null()) return std::nullopt;
  if (value.is_string()) return value.get<std::string>();
  if (value.is_array()) {
    for (const Json& t : value)
      if (t.is_object() && t.value("name", "") == "default" && t.contains("template") && t["template"].is_string())
        return t["template"].get<std::string>();
    throw Error(fmt::format("{}: chat_template is a list without a \"default\" template", where));
  }
  throw Error(fmt::format("{}: chat_template must be a string or a list of {{name, template}}, got {}", where,
                          value.type_name()));
}

}  // namespace

std::optional<ChatTemplate> ChatTemplate::from_tokenizer_config(std::string_view config_json, const std::string& where) {
  const Json config = Json::parse(config_json.begin(), config_json.end(), nullptr, false);
  if (!config.is_object()) throw Error(fmt::format("{}: not a JSON object", where));
  auto it = config.find("chat_template");
  if (it == config.end()) return std::nullopt;
  const auto text = template_text(*it, where);
  if (!text) return std::nullopt;
  Json specials = Json::object();
  for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"})
    if (const std::string t = token_text(config, key); !t.empty()) specials[key] = t;
  return parse(*text, std::move(specials), where + ": chat_template");
}

ChatTemplate ChatTemplate::from_text(const std::string& jinja, const std::string& bos, const std::string& eos,
                                   const std::string& where) {
  Json specials = Json::object();
  if (!bos.empty()) specials["bos_token"] = bos;
  if (!eos.empty()) specials["eos_token"] = eos;
  return parse(jinja, std::move(specials), where);
}

ChatTemplate ChatTemplate::parse(const std::string& jinja, Json specials, const std::string& where) {
  std::string bos = token_text(specials, "bos_token"), eos = token_text(specials, "eos_token");
  try {
    return ChatTemplate(JinjaTemplate(jinja), std::move(specials), std::move(bos), std::move(eos));
  } catch (const JinjaError& e) {
    throw Error(fmt::format("{}: {}", where, e.what()));
  }
}

std::string ChatTemplate::apply(const Json& messages, bool add_generation_prompt) const {
  Json variables = specials_;
  variables["messages"] = messages;
  variables["add_generation_prompt"] = add_generation_prompt;
  return template_.render(variables);
}

CheckpointChat checkpoint_chat(const CheckpointSource& source, const std::string& model_name) {
  CheckpointChat chat;
  const auto config = source.tokenizer_config();
  const std::string where = (source.path() / "tokenizer_config.json").string();
  if (config) {
    try {
      chat.chat_template =
          ChatTemplate::from_tokenizer_config({reinterpret_cast<const char*>(config->data()), config->size()}, where);
    } catch (const Error& e) {
      chat.refusal = fmt::format("the model '{}' has a chat template moec cannot apply ({}); format the conversation "
                                 "yourself and POST it to /v1/completions",
                                 model_name, e.what());
      return chat;
    }
  }
  if (!chat.chat_template)
    chat.refusal = fmt::format("the model '{}' has no chat template; POST a prompt to /v1/completions", model_name);
  return chat;
}

CheckpointChat chat_from_file(const std::filesystem::path& file, const CheckpointSource& source,
                              const Tokenizer& tokenizer) {
  const std::string jinja = read_text_file(file);
  std::string bos = tokenizer.special_text(int32_t(source.config().bos_token_id));
  std::string eos = tokenizer.special_text(int32_t(source.config().eos_token_id));
  if (const auto config = source.tokenizer_config()) {
    const char* text = reinterpret_cast<const char*>(config->data());
    const Json j = Json::parse(text, text + config->size(), nullptr, false);
    if (j.is_object()) {
      if (const std::string t = token_text(j, "bos_token"); !t.empty()) bos = t;
      if (const std::string t = token_text(j, "eos_token"); !t.empty()) eos = t;
    }
  }
  CheckpointChat chat;
  chat.chat_template = ChatTemplate::from_text(jinja, bos, eos, file.string());
  return chat;
}

}  // namespace moec
