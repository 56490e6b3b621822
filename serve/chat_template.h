// A checkpoint's chat template, applied as transformers' apply_chat_template
// does: tokenizer_config.json's `chat_template` (a Jinja string, or the
// "default" entry of a list of {name, template}) rendered by serve/jinja.h
// with `messages`, `add_generation_prompt` and the special tokens
// (bos_token, eos_token, unk_token, pad_token: strings, or objects whose
// `content` is the string). The rendered text is tokenized with its special
// tokens written out turned into their ids (Tokenizer::encode_with_specials),
// as transformers does (add_special_tokens=False: the template writes BOS).
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "serve/jinja.h"

namespace moec {

class ChatTemplate {
 public:
  // From tokenizer_config.json's text; `where` names it in errors. nullopt
  // when it has no chat template. Throws moec::Error naming `where` when the
  // file is not a JSON object or its template does not parse.
  static std::optional<ChatTemplate> from_tokenizer_config(std::string_view config_json, const std::string& where);
  // A template given as text (`moec serve --chat-template FILE`) with the
  // special tokens' text; throws moec::Error naming `where` when it does not
  // parse.
  static ChatTemplate from_text(const std::string& jinja, const std::string& bos, const std::string& eos,
                                const std::string& where);

  // The prompt for `messages` (an array of objects with "role" and
  // "content"). Throws JinjaError: the template's own raise_exception (e.g.
  // "roles must alternate"), or a construct it cannot evaluate.
  std::string apply(const nlohmann::ordered_json& messages, bool add_generation_prompt) const;

  // The special tokens' text ("" when the config has none); a chat turn ends
  // at EOS.
  const std::string& bos_token() const { return bos_; }
  const std::string& eos_token() const { return eos_; }

 private:
  // The template parsed (errors prefixed with `where`), its special tokens
  // (name -> text) passed to every rendering.
  static ChatTemplate parse(const std::string& jinja, nlohmann::ordered_json specials, const std::string& where);
  ChatTemplate(JinjaTemplate t, nlohmann::ordered_json specials, std::string bos, std::string eos)
      : template_(std::move(t)), specials_(std::move(specials)), bos_(std::move(bos)), eos_(std::move(eos)) {}
  JinjaTemplate template_;
  nlohmann::ordered_json specials_;  // name -> text, passed to the template
  std::string bos_, eos_;
};

class CheckpointSource;

// What /v1/chat/completions can do for a checkpoint: its chat template, or
// the reason it cannot (the 400 message: no template, or one that does not
// parse, naming the model and the file).
struct CheckpointChat {
  std::optional<ChatTemplate> chat_template;
  std::string refusal;
};
CheckpointChat checkpoint_chat(const CheckpointSource& source, const std::string& model_name);

class Tokenizer;
// A chat template from a file, for a checkpoint that has none (or to
// replace its own), as llama-server's --chat-template-file: the special
// tokens come from the checkpoint's tokenizer_config.json when it has one,
// else from the tokenizer's pieces for the config's BOS/EOS ids. Throws
// moec::Error naming the file when it cannot be read or parsed.
CheckpointChat chat_from_file(const std::filesystem::path& file, const CheckpointSource& source,
                              const Tokenizer& tokenizer);

}  // namespace moec
