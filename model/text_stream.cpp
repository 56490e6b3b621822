#include "model/text_stream.h"

#include <span>

#include "model/tokenizer.h"

namespace moec {

TextStream::TextStream(const Tokenizer& tokenizer, std::vector<int32_t> context)
    : tokenizer_(tokenizer), ids_(std::move(context)) {
  text_ = tokenizer_.decode(ids_);
}

std::string TextStream::push(int32_t id) {
  ids_.push_back(id);
  const auto text = window_text(anchor_);
  if (!text || text->size() <= text_.size() || text->compare(0, text_.size(), text_) != 0) return {};
  std::string released = text->substr(text_.size());
  text_ = *text;
  if (ids_.size() - anchor_ >= kSlideAfter) {
    const size_t anchor = ids_.size() - kKeep;
    const auto moved = window_text(anchor);  // must be the tail of what was released
    if (moved && moved->size() <= text_.size() &&
        text_.compare(text_.size() - moved->size(), moved->size(), *moved) == 0) {
      anchor_ = anchor;
      text_ = *moved;
    }
  }
  return released;
}

std::optional<std::string> TextStream::window_text(size_t anchor) const {
  const std::span<const int32_t> ids(ids_);
  if (anchor == 0) return tokenizer_.decode(ids);
  std::string with = tokenizer_.decode(ids.subspan(anchor - 1));
  const std::string context = tokenizer_.decode(ids.subspan(anchor - 1, 1));
  if (with.compare(0, context.size(), context) != 0) return std::nullopt;
  return with.substr(context.size());
}

std::string token_text(const Tokenizer& tokenizer, int32_t previous, int32_t id) {
  if (previous < 0) return tokenizer.decode(std::span(&id, 1));
  const int32_t pair[2] = {previous, id};
  std::string with = tokenizer.decode(pair), before = tokenizer.decode(std::span(&previous, 1));
  if (with.compare(0, before.size(), before) != 0) return tokenizer.decode(std::span(&id, 1));
  return with.substr(before.size());
}

}  // namespace moec
