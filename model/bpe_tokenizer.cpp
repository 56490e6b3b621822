#include "model/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <limits>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "io/error.h"
#include "io/limits.h"

namespace moec {

using nlohmann::json;

namespace {

// GPT-2's regex, which ByteLevel with use_regex applies.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += char(0xE0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xF0 | (cp >> 18));
    s += char(0x80 | ((cp >> 12) & 0x3F));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the
// others to U+0100 onwards in byte order.
std::vector<uint32_t> byte_code_points() {
  std::vector<uint32_t> table(256, 0);
  std::vector<bool> direct(256, false);
  for (int b = '!'; b <= '~'; ++b) direct[size_t(b)] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[size_t(b)] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[size_t(b)] = true;
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) table[size_t(b)] = direct[size_t(b)] ? uint32_t(b) : next++;
  return table;
}

// The UTF-8 sequence starting at s[i]: its length when valid, else 0 with
// `invalid` set to the length of the maximal invalid subpart (>= 1), which
// the tokenizers library (Rust from_utf8_lossy) replaces by one U+FFFD.
size_t utf8_sequence(std::string_view s, size_t i, size_t& invalid) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned b = p[i];
  if (b < 0x80) return 1;
  size_t length = 0;
  unsigned lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b >= 0xC2 && b <= 0xDF) length = 2;
  else if (b == 0xE0) length = 3, lo = 0xA0;
  else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) length = 3;
  else if (b == 0xED) length = 3, hi = 0x9F;
  else if (b == 0xF0) length = 4, lo = 0x90;
  else if (b >= 0xF1 && b <= 0xF3) length = 4;
  else if (b == 0xF4) length = 4, hi = 0x8F;
  if (length == 0) {
    invalid = 1;
    return 0;
  }
  size_t k = 1;
  for (; k < length && i + k < s.size(); ++k) {
    const unsigned c = p[i + k];
    if (!(k == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF))) break;
  }
  if (k == length) return length;
  invalid = k;
  return 0;
}

std::string lossy_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0, invalid = 0; i < s.size();) {
    if (const size_t length = utf8_sequence(s, i, invalid)) {
      out.append(s.substr(i, length));
      i += length;
    } else {
      out += "\xEF\xBF\xBD";
      i += invalid;
    }
  }
  return out;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0, invalid = 0; i < s.size();) {
    const size_t length = utf8_sequence(s, i, invalid);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

// A compiled PCRE2 pattern (UTF, Unicode properties for \p, \s, \w; JIT
// where available).
class Regex {
 public:
  Regex(const std::string& pattern, const std::string& what) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &error,
                          &offset, nullptr);
    if (!code_) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      fail("{}: pre-tokenizer regex does not compile at offset {}: {}", what, offset,
           reinterpret_cast<const char*>(message));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // optional: falls back to the interpreter
    // A pattern from a downloaded file may backtrack exponentially: bound the
    // work of one match (real pre-tokenizer patterns need a few hundred
    // steps per piece) so such a file fails instead of hanging.
    context_ = pcre2_match_context_create(nullptr);
    pcre2_set_match_limit(context_, kMatchLimit);
    pcre2_set_depth_limit(context_, kMatchLimit);
    what_ = what;
  }
  ~Regex() {
    pcre2_match_context_free(context_);
    pcre2_code_free(code_);
  }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Cuts `text` into pieces: every match, and the text between matches.
  void split(std::string_view text, std::vector<std::string_view>& pieces) const {
    pcre2_match_data* match = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t offset = 0, last = 0;
    while (offset <= text.size()) {
      const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), offset,
                                 PCRE2_NO_UTF_CHECK, match, context_);  // text checked by encode()
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {  // a match limit, JIT stack, ...: never cut the text silently otherwise
        pcre2_match_data_free(match);
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof message);
        fail("{}: pre-tokenizer regex failed at byte {}: {}", what_, offset, reinterpret_cast<const char*>(message));
      }
      const PCRE2_SIZE* v = pcre2_get_ovector_pointer(match);
      const size_t start = v[0], end = v[1];
      if (end == start) {  // an empty match: step over one character
        offset = start + 1;
        while (offset < text.size() && (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80) ++offset;
        continue;
      }
      if (start > last) pieces.push_back(text.substr(last, start - last));
      pieces.push_back(text.substr(start, end - start));
      last = offset = end;
    }
    if (last < text.size()) pieces.push_back(text.substr(last));
    pcre2_match_data_free(match);
  }

 private:
  static constexpr uint32_t kMatchLimit = 1'000'000;
  pcre2_code* code_ = nullptr;
  pcre2_match_context* context_ = nullptr;
  std::string what_;
};

}  // namespace

struct BpeTokenizer::Impl {
  std::string what;
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::string> tokens;  // id -> token string (empty for unused ids)
  std::vector<int32_t> byte_token;  // byte -> its token id
  std::unordered_map<uint32_t, uint8_t> char_byte;  // bytes_to_unicode code point -> byte
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (left, right) -> (rank, merged id)
  struct Added {
    std::string content;
    int32_t id;
    bool special;
  };
  std::vector<Added> added;
  std::unordered_map<int32_t, size_t> added_by_id;  // id -> index in `added`
  bool added_first_byte[256] = {};  // bytes an added token can start with
  bool nfc = false;
  bool prefix_space = false;
  std::vector<std::unique_ptr<Regex>> splitters;  // applied in order
  int64_t vocab_size = 0;

  static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

  void parse_pre_tokenizer(const json& p) {
    if (p.is_null()) return;
    const std::string type = p.value("type", "");
    if (type == "Sequence") {
      for (const json& step : p.at("pretokenizers")) parse_pre_tokenizer(step);
    } else if (type == "Split") {
      if (p.value("behavior", "") != "Isolated" || p.value("invert", false))
        fail("{}: Split pre-tokenizer with behavior '{}' / invert is not supported (only Isolated)", what,
             p.value("behavior", ""));
      const json& pattern = p.at("pattern");
      std::string regex;
      if (pattern.contains("Regex")) {
        regex = pattern["Regex"].get<std::string>();
      } else {  // a literal string: escape it for PCRE2
        regex = "\\Q" + pattern.at("String").get<std::string>() + "\\E";
      }
      splitters.push_back(std::make_unique<Regex>(regex, what));
    } else if (type == "ByteLevel") {
      prefix_space = prefix_space || p.value("add_prefix_space", false);
      if (p.value("use_regex", true)) splitters.push_back(std::make_unique<Regex>(kGpt2Pattern, what));
    } else {
      fail("{}: pre_tokenizer type '{}' is not supported (Split, ByteLevel, Sequence)", what, type);
    }
  }

  // A token id: an integer below the vocabulary cap (io/limits.h), which
  // keeps a lying file from making the id table gigabytes long.
  int32_t token_id(const json& v, std::string_view where) const {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= limits::kMaxConfigDimension)
      fail("{}: {} id {} is not an integer in [0, {})", what, where, v.dump(), limits::kMaxConfigDimension);
    return int32_t(v.get<int64_t>());
  }

  void parse(const json& j) {
    const json& model = j.at("model");
    if (model.value("type", "BPE") != "BPE") fail("{}: model type '{}' is not BPE", what, model.value("type", ""));
    for (const char* key : {"dropout", "unk_token"})
      if (model.contains(key) && !model[key].is_null()) fail("{}: model.{} is not supported", what, key);
    if (model.value("byte_fallback", false)) fail("{}: model.byte_fallback is not supported", what);
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (model.contains(key) && !model[key].is_null() && !model[key].get<std::string>().empty())
        fail("{}: model.{} is not supported", what, key);
    for (const auto& [token, id] : model.at("vocab").items()) {
      const int32_t i = token_id(id, "vocab entry '" + token + "'");
      vocab.emplace(token, i);
      vocab_size = std::max<int64_t>(vocab_size, int64_t(i) + 1);
    }
    for (const json& a : j.value("added_tokens", json::array())) {
      added.push_back({a.at("content").get<std::string>(), token_id(a.at("id"), "added token"), a.value("special", false)});
      if (!added.back().content.empty()) added_first_byte[static_cast<unsigned char>(added.back().content[0])] = true;
      added_by_id[added.back().id] = added.size() - 1;
      vocab_size = std::max<int64_t>(vocab_size, int64_t(added.back().id) + 1);
    }
    // Ids are dense in real files (0..n-1, added tokens after): a table much
    // longer than the ids defined would be a lying file's allocation.
    const int64_t defined = int64_t(vocab.size() + added.size());
    if (vocab_size > 2 * defined + 1024)
      fail("{}: largest token id {} but only {} tokens defined", what, vocab_size - 1, defined);
    tokens.assign(size_t(vocab_size), {});
    for (const auto& [token, id] : vocab) tokens[size_t(id)] = token;
    const auto code_points = byte_code_points();
    byte_token.assign(256, -1);
    for (int b = 0; b < 256; ++b) {
      char_byte[code_points[size_t(b)]] = uint8_t(b);
      auto it = vocab.find(utf8(code_points[size_t(b)]));
      if (it != vocab.end()) byte_token[size_t(b)] = it->second;
    }
    int32_t rank = 0;
    for (const json& m : model.at("merges")) {
      std::string left, right;
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t space = s.find(' ');
        if (space == std::string::npos) fail("{}: merge '{}' has no space", what, s);
        left = s.substr(0, space);
        right = s.substr(space + 1);
      } else {
        left = m.at(0).get<std::string>();
        right = m.at(1).get<std::string>();
      }
      auto l = vocab.find(left), r = vocab.find(right), merged = vocab.find(left + right);
      if (l == vocab.end() || r == vocab.end() || merged == vocab.end())
        fail("{}: merge {} '{}' + '{}' uses a token not in the vocabulary", what, rank, left, right);
      merges.emplace(pair_key(l->second, r->second), std::pair{rank, merged->second});
      ++rank;
    }
    const json& normalizer = j.contains("normalizer") ? j["normalizer"] : json(nullptr);
    if (!normalizer.is_null()) {
      if (normalizer.value("type", "") != "NFC")
        fail("{}: normalizer '{}' is not supported (null or NFC)", what, normalizer.value("type", ""));
      nfc = true;
    }
    parse_pre_tokenizer(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json(nullptr));
    const json& decoder = j.contains("decoder") ? j["decoder"] : json(nullptr);
    if (!decoder.is_null() && decoder.value("type", "") != "ByteLevel")
      fail("{}: decoder '{}' is not supported (ByteLevel)", what, decoder.value("type", ""));
  }

  std::string normalize(std::string_view text) const {
    if (!nfc || std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }))
      return std::string(text);
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* n = icu::Normalizer2::getNFCInstance(status);
    if (U_FAILURE(status)) fail("{}: ICU's NFC data is unavailable", what);
    icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), int32_t(text.size())));
    icu::UnicodeString normalized = n->normalize(u, status);
    if (U_FAILURE(status)) fail("{}: NFC normalization failed", what);
    std::string out;
    normalized.toUTF8String(out);
    return out;
  }

  // BPE of one piece: its bytes as byte tokens, then the lowest-ranked
  // adjacent pair merged (the leftmost of equals) until none is left.
  void bpe(std::string_view piece, std::vector<int32_t>& out) const {
    std::vector<int32_t> symbols;
    symbols.reserve(piece.size());
    for (unsigned char b : piece) {
      if (byte_token[b] < 0) fail("{}: the vocabulary has no token for byte {}", what, int(b));
      symbols.push_back(byte_token[b]);
    }
    for (;;) {
      int32_t best = std::numeric_limits<int32_t>::max(), merged = -1;
      size_t at = 0;
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        auto it = merges.find(pair_key(symbols[i], symbols[i + 1]));
        if (it != merges.end() && it->second.first < best) {
          best = it->second.first;
          merged = it->second.second;
          at = i;
        }
      }
      if (merged < 0) break;
      symbols[at] = merged;
      symbols.erase(symbols.begin() + ptrdiff_t(at) + 1);
    }
    out.insert(out.end(), symbols.begin(), symbols.end());
  }

  void encode_segment(std::string_view raw, std::vector<int32_t>& out,
                      std::unordered_map<std::string, std::vector<int32_t>>& cache) const {
    if (raw.empty()) return;
    std::string text = normalize(raw);
    if (prefix_space && text.front() != ' ') text.insert(text.begin(), ' ');
    std::vector<std::string_view> pieces{text}, next;
    for (const auto& regex : splitters) {
      next.clear();
      for (std::string_view p : pieces) regex->split(p, next);
      pieces.swap(next);
    }
    for (std::string_view p : pieces) {
      auto [it, fresh] = cache.try_emplace(std::string(p));
      if (fresh) bpe(p, it->second);
      out.insert(out.end(), it->second.begin(), it->second.end());
    }
  }
};

BpeTokenizer::BpeTokenizer(std::string_view json_text, const std::string& what) : impl_(std::make_unique<Impl>()) {
  impl_->what = what;
  json j;
  try {
    j = json::parse(json_text);
    impl_->parse(j);
  } catch (const json::exception& e) {
    fail("{}: not a valid tokenizer.json: {}", what, e.what());
  }
}

BpeTokenizer::~BpeTokenizer() = default;
BpeTokenizer::BpeTokenizer(BpeTokenizer&&) noexcept = default;

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  if (!valid_utf8(text)) fail("{}: the text is not valid UTF-8", impl_->what);
  std::vector<int32_t> out;
  std::unordered_map<std::string, std::vector<int32_t>> cache;
  size_t segment = 0, i = 0;
  while (i < text.size()) {
    if (!impl_->added_first_byte[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    const Impl::Added* match = nullptr;  // the longest added token starting here
    for (const auto& a : impl_->added)
      if (!a.content.empty() && text.compare(i, a.content.size(), a.content) == 0 &&
          (!match || a.content.size() > match->content.size()))
        match = &a;
    if (!match) {
      ++i;
      continue;
    }
    impl_->encode_segment(text.substr(segment, i - segment), out, cache);
    out.push_back(match->id);
    i += match->content.size();
    segment = i;
  }
  impl_->encode_segment(text.substr(segment), out, cache);
  return out;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || id >= impl_->vocab_size) fail("{}: token id {} is outside the vocabulary", impl_->what, id);
    if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) {
      const Impl::Added* added = &impl_->added[it->second];
      if (!(skip_special_tokens && added->special)) bytes += added->content;
      continue;
    }
    const std::string& token = impl_->tokens[size_t(id)];
    // Each character back to its byte; one outside the table stays as it is.
    for (size_t k = 0; k < token.size();) {
      const unsigned char c = static_cast<unsigned char>(token[k]);
      const size_t length = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      uint32_t cp = length == 1 ? c : length == 2 ? (c & 0x1F) : length == 3 ? (c & 0x0F) : (c & 0x07);
      for (size_t m = 1; m < length && k + m < token.size(); ++m)
        cp = (cp << 6) | (static_cast<unsigned char>(token[k + m]) & 0x3F);
      auto it = impl_->char_byte.find(cp);
      if (it != impl_->char_byte.end())
        bytes += char(it->second);
      else
        bytes.append(token, k, length);
      k += length;
    }
  }
  return lossy_utf8(bytes);
}

int64_t BpeTokenizer::vocab_size() const { return impl_->vocab_size; }

int32_t BpeTokenizer::added_token_id(std::string_view content) const {
  for (const auto& a : impl_->added)
    if (a.content == content) return a.id;
  return -1;
}

}  // namespace moec
