#include "serve/completion.h"

#include <algorithm>

#include "model/tokenizer.h"

namespace moec {

using nlohmann::json;

void LogprobsPart::append(const LogprobsPart& o) {
  tokens.insert(tokens.end(), o.tokens.begin(), o.tokens.end());
  token_logprobs.insert(token_logprobs.end(), o.token_logprobs.begin(), o.token_logprobs.end());
  top.insert(top.end(), o.top.begin(), o.top.end());
  text_offset.insert(text_offset.end(), o.text_offset.begin(), o.text_offset.end());
}

json LogprobsPart::to_json() const {
  json lp = json::array(), tops = json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    lp.push_back(token_logprobs[i] ? json(*token_logprobs[i]) : json(nullptr));
    if (!token_logprobs[i]) {
      tops.push_back(nullptr);
      continue;
    }
    json t = json::object();
    for (const auto& [text, value] : top[i])
      if (!t.contains(text)) t[text] = value;  // tokens with the same text: the likelier one
    tops.push_back(std::move(t));
  }
  return json{{"tokens", tokens}, {"token_logprobs", lp}, {"top_logprobs", tops}, {"text_offset", text_offset}};
}

CompletionAssembler::CompletionAssembler(const Tokenizer& tokenizer, std::vector<int32_t> fed, bool bos_added,
                                         std::optional<std::string> prompt_text, std::vector<std::string> stops,
                                         bool logprobs)
    : tokenizer_(tokenizer),
      fed_(std::move(fed)),
      bos_added_(bos_added),
      prompt_text_(std::move(prompt_text)),
      stops_(std::move(stops)),
      logprobs_(logprobs),
      stream_(tokenizer, fed_),
      previous_(fed_.back()) {}

LogprobsPart CompletionAssembler::entry(int32_t previous, int32_t id, std::optional<float> logprob,
                                        const std::vector<std::pair<int32_t, float>>& top) {
  LogprobsPart part;
  part.tokens.push_back(token_text(tokenizer_, previous, id));
  part.token_logprobs.push_back(logprob);
  std::vector<std::pair<std::string, float>> alternatives;
  for (const auto& [t, v] : top) alternatives.emplace_back(token_text(tokenizer_, previous, t), v);
  part.top.push_back(std::move(alternatives));
  part.text_offset.push_back(offset_);
  offset_ += int64_t(part.tokens.back().size());
  return part;
}

CompletionPiece CompletionAssembler::echo(const std::vector<TokenLogprob>* scores) {
  CompletionPiece piece;
  const size_t first = bos_added_ ? 1 : 0;
  const std::span<const int32_t> shown = std::span(fed_).subspan(first);
  piece.text = prompt_text_ ? *prompt_text_ : tokenizer_.decode(shown);
  if (logprobs_) {
    for (size_t i = first; i < fed_.size(); ++i) {
      // scores[j] is fed token j + 1 given the ones before it.
      const TokenLogprob* s = (i >= 1 && scores && i - 1 < scores->size()) ? &(*scores)[i - 1] : nullptr;
      const int32_t previous = i == 0 ? -1 : fed_[i - 1];
      piece.logprobs.append(entry(previous, fed_[i], s ? std::optional(s->logprob) : std::nullopt,
                                  s ? s->top : std::vector<std::pair<int32_t, float>>{}));
    }
  }
  echo_tokens_ = piece.logprobs.tokens.size();
  offset_ = int64_t(piece.text.size());
  whole_text_ += piece.text;
  whole_logprobs_.append(piece.logprobs);
  return piece;
}

CompletionPiece CompletionAssembler::token(int32_t id, const std::optional<TokenLogprob>& logprob) {
  CompletionPiece piece;
  if (stopped_) return piece;
  ++tokens_;
  if (logprobs_ && logprob) piece.logprobs = entry(previous_, id, logprob->logprob, logprob->top);
  previous_ = id;
  text_ += stream_.push(id);
  piece.text = release(false);
  whole_text_ += piece.text;
  whole_logprobs_.append(piece.logprobs);
  return piece;
}

CompletionPiece CompletionAssembler::finish() {
  CompletionPiece piece;
  if (stopped_) return piece;
  piece.text = release(true);
  whole_text_ += piece.text;
  return piece;
}

std::string CompletionAssembler::release(bool final) {
  // The earliest stop sequence that starts in the text not yet released
  // (released text never holds a whole one).
  size_t cut = std::string::npos;
  for (const auto& s : stops_) {
    const size_t from = released_ >= s.size() - 1 ? released_ - (s.size() - 1) : 0;
    const size_t at = text_.find(s, from);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut != std::string::npos) {
    stopped_ = true;
    text_.resize(std::max(cut, released_));
  }
  size_t end = text_.size();
  if (!stopped_ && !final) {  // hold back a tail that may begin a stop sequence
    size_t hold = 0;
    for (const auto& s : stops_)
      for (size_t k = std::min(s.size() - 1, text_.size() - released_); k > hold; --k)
        if (text_.compare(text_.size() - k, k, s, 0, k) == 0) {
          hold = k;
          break;
        }
    end -= hold;
  }
  std::string out = text_.substr(released_, end - released_);
  released_ = end;
  return out;
}

CompletionPiece CompletionAssembler::whole() const {
  CompletionPiece piece;
  piece.text = whole_text_;
  if (!stopped_) {
    piece.logprobs = whole_logprobs_;
    return piece;
  }
  // Stopped: the echoed prompt's tokens, and the generated ones that begin
  // before the stop sequence.
  const int64_t size = int64_t(whole_text_.size());
  const LogprobsPart& all = whole_logprobs_;
  for (size_t i = 0; i < all.tokens.size(); ++i) {
    if (i >= echo_tokens_ && all.text_offset[i] >= size) continue;
    piece.logprobs.tokens.push_back(all.tokens[i]);
    piece.logprobs.token_logprobs.push_back(all.token_logprobs[i]);
    piece.logprobs.top.push_back(all.top[i]);
    piece.logprobs.text_offset.push_back(all.text_offset[i]);
  }
  return piece;
}

}  // namespace moec
