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
#include "model/thread_pool.h"

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

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
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
    scan(
        text, 0, [](size_t) { return false; }, [](size_t) {}, [&](std::string_view p) { pieces.push_back(p); });
  }

  // The scan behind split(), from byte `from` (a character boundary) as if
  // a match had just ended there. A scan's state is where the next match is
  // searched for; after a non-empty match it is the match's end, and from
  // such a state the rest of the scan depends on nothing before it (PCRE2
  // sees the whole subject, lookbehinds included): two scans that reach the
  // same one agree from there on. at_state(offset) is called at each of
  // them (the start included), before the pieces that follow; the scan
  // stops, returning the offset, at the first one after the start where
  // stop(offset) holds, or at the end of the text (returning its size).
  template <class Stop, class AtState, class Piece>
  size_t scan(std::string_view text, size_t from, Stop&& stop, AtState&& at_state, Piece&& piece) const {
    pcre2_match_data* match = pcre2_match_data_create_from_pattern(code_, nullptr);
    struct Free {
      pcre2_match_data* m;
      ~Free() { pcre2_match_data_free(m); }
    } free_match{match};
    size_t offset = from, last = from;
    at_state(from);
    while (offset <= text.size()) {
      const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), offset,
                                 PCRE2_NO_UTF_CHECK, match, context_);  // text checked by encode()
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {  // a match limit, JIT stack, ...: never cut the text silently otherwise
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
      if (start > last) piece(text.substr(last, start - last));
      piece(text.substr(start, end - start));
      last = offset = end;
      if (end < text.size()) {
        if (stop(end)) return end;
        at_state(end);
      }
    }
    if (last < text.size()) piece(text.substr(last));
    return text.size();
  }

 private:
  static constexpr uint32_t kMatchLimit = 1'000'000;
  pcre2_code* code_ = nullptr;
  pcre2_match_context* context_ = nullptr;
  std::string what_;
};

}  // namespace

struct BpeTokenizer::Impl {
  // Merged ids of distinct pieces; cleared when it holds kMaxCachedPieces
  // (a corpus of any size keeps memory bounded).
  struct PieceHash {  // looks pieces up as string_views, without a copy
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using PieceCache = std::unordered_map<std::string, std::vector<int32_t>, PieceHash, std::equal_to<>>;
  static constexpr size_t kMaxCachedPieces = size_t{1} << 18;

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

  // NFC, in parts of about chunk_bytes cut between two ASCII characters
  // (neither composes with anything across such a cut, so the parts
  // normalize alone to the same text; ICU's working copies stay small).
  // `space_first`: with a space before it (ByteLevel's add_prefix_space).
  // Whether normalize() would change the text.
  bool changes(std::string_view text, bool space_first) const { return space_first || (nfc && !is_ascii(text)); }
  std::string normalize(std::string_view text, size_t chunk_bytes, bool space_first) const {
    auto ascii = [](char c) { return static_cast<unsigned char>(c) < 0x80; };
    std::string out;
    out.reserve(text.size() + 1);
    if (space_first) out += ' ';
    if (!nfc || is_ascii(text)) {
      out += text;
      return out;
    }
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* n = icu::Normalizer2::getNFCInstance(status);
    if (U_FAILURE(status)) fail("{}: ICU's NFC data is unavailable", what);
    for (size_t begin = 0; begin < text.size();) {
      size_t end = std::min(text.size(), begin + std::max<size_t>(chunk_bytes, 1));
      while (end < text.size() && !(ascii(text[end - 1]) && ascii(text[end]))) ++end;
      const std::string_view part = text.substr(begin, end - begin);
      if (is_ascii(part)) {
        out += part;
      } else {
        icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(part.data(), int32_t(part.size())));
        icu::UnicodeString normalized = n->normalize(u, status);
        if (U_FAILURE(status)) fail("{}: NFC normalization failed", what);
        normalized.toUTF8String(out);  // appends
      }
      begin = end;
    }
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

  // A piece of the first pre-tokenizer: the later ones cut it further, then
  // each part is merged (once per distinct part: `cache`, bounded).
  void encode_piece(std::string_view piece, size_t level, std::vector<int32_t>& out, PieceCache& cache) const {
    if (level < splitters.size()) {
      std::vector<std::string_view> parts;
      splitters[level]->split(piece, parts);
      for (std::string_view p : parts) encode_piece(p, level + 1, out, cache);
      return;
    }
    auto it = cache.find(piece);
    if (it == cache.end()) {
      if (cache.size() >= kMaxCachedPieces) cache.clear();
      it = cache.emplace(std::string(piece), std::vector<int32_t>()).first;
      bpe(piece, it->second);
    }
    out.insert(out.end(), it->second.begin(), it->second.end());
  }

  void encode_segment(std::string_view raw, std::vector<int32_t>& out, PieceCache& cache, size_t chunk_bytes) const {
    if (raw.empty()) return;
    const bool space_first = prefix_space && raw.front() != ' ';
    const bool changed = changes(raw, space_first);
    std::string normalized;  // a copy only where the text changes
    if (changed) normalized = normalize(raw, chunk_bytes, space_first);
    const std::string_view text = changed ? std::string_view(normalized) : raw;
    if (splitters.empty()) return encode_piece(text, 0, out, cache);
    const std::vector<size_t> cuts = chunk_starts(text, chunk_bytes);
    if (cuts.size() == 1) {
      splitters[0]->scan(
          text, 0, [](size_t) { return false; }, [](size_t) {},
          [&](std::string_view p) { encode_piece(p, 1, out, cache); });
      return;
    }
    encode_chunks(text, cuts, out);
  }

  // Where chunks of a long text start: 0, then about every chunk_bytes, at
  // a space (where pre-tokenizers usually start a piece, so a chunk's scan
  // is usually right from its first byte) or else a character boundary.
  static std::vector<size_t> chunk_starts(std::string_view text, size_t chunk_bytes) {
    std::vector<size_t> cuts{0};
    chunk_bytes = std::max<size_t>(chunk_bytes, 1);
    for (size_t target = chunk_bytes; target < text.size(); target = cuts.back() + chunk_bytes) {
      size_t cut = text.find(' ', target);
      if (cut == std::string_view::npos || cut - target > 4096) cut = target;
      while (cut < text.size() && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) ++cut;
      if (cut >= text.size()) break;
      cuts.push_back(cut);
    }
    return cuts;
  }

  // One chunk's scan, started at its cut as if a piece ended there (which
  // may be wrong for its first pieces) and run to the first state past the
  // next cut: its pieces (as boundaries: the cut, then each piece's end),
  // the states it passed near its start (offset, index in bounds) and the
  // state it stopped at. Joined, the chunk's true pieces are `rescanned`
  // (boundaries; none when its scan was met at once), then its own from
  // bounds[first_true] on.
  struct ChunkScan {
    std::vector<size_t> bounds, rescanned;
    std::vector<std::pair<size_t, size_t>> states;
    size_t end = 0, first_true = 0;
    std::vector<int32_t> ids;
    bool has_state(size_t offset, size_t& bound) const {
      auto it = std::lower_bound(states.begin(), states.end(), std::pair{offset, size_t{0}});
      if (it == states.end() || it->first != offset) return false;
      bound = it->second;
      return true;
    }
  };
  static constexpr size_t kKeptStates = 4096;  // per chunk: where the previous chunk can join it
  static constexpr size_t kRoundChunks = 64;   // chunks pre-tokenized, then merged, at a time

  // Long texts, 64 chunks at a time: the chunks pre-tokenized on every core,
  // joined into the true pieces, then merged on every core. The first
  // chunk's scan is the true one; it runs on to the first state at or past
  // the next chunk's start, and where the next chunk's scan passed that very
  // state, that scan is the true one from there (see Regex::scan). Where it
  // did not, the text is scanned again from the true state until it reaches
  // one of that chunk's states or its end. So the pieces are those of one
  // scan over the whole text, whatever the cuts.
  void encode_chunks(std::string_view text, const std::vector<size_t>& cuts, std::vector<int32_t>& out) const {
    ThreadPool pool;  // one thread per core
    std::vector<PieceCache> caches(size_t(pool.size()));
    auto end_of = [&](std::string_view p) { return size_t(p.data() + p.size() - text.data()); };
    auto encode_bounds = [&](const std::vector<size_t>& bounds, size_t first, ChunkScan& c, PieceCache& cache) {
      for (size_t i = first; i + 1 < bounds.size(); ++i)
        encode_piece(text.substr(bounds[i], bounds[i + 1] - bounds[i]), 1, c.ids, cache);
    };
    size_t state = 0;  // the true scan's state: the text before it is encoded into out
    for (size_t first = 0; first < cuts.size(); first += kRoundChunks) {
      std::vector<ChunkScan> chunks(std::min(kRoundChunks, cuts.size() - first));
      pool.parallel_for(chunks.size(), [&](size_t j, int) {
        ChunkScan& c = chunks[j];
        const size_t from = cuts[first + j], stop_at = first + j + 1 < cuts.size() ? cuts[first + j + 1] : text.size();
        c.bounds.push_back(from);
        c.end = splitters[0]->scan(
            text, from, [&](size_t offset) { return offset >= stop_at; },
            [&](size_t offset) {
              if (c.states.size() < kKeptStates) c.states.emplace_back(offset, c.bounds.size() - 1);
            },
            [&](std::string_view p) { c.bounds.push_back(end_of(p)); });
      });
      for (ChunkScan& c : chunks) {  // the join
        c.first_true = c.bounds.size();
        if (state >= c.end) continue;  // a rescan went past this chunk
        if (!c.has_state(state, c.first_true)) {
          c.rescanned.push_back(state);
          state = splitters[0]->scan(
              text, state, [&](size_t offset) { return offset >= c.end || c.has_state(offset, c.first_true); },
              [](size_t) {}, [&](std::string_view p) { c.rescanned.push_back(end_of(p)); });
        }
        if (state < c.end) state = c.end;
      }
      pool.parallel_for(chunks.size(), [&](size_t j, int thread) {
        ChunkScan& c = chunks[j];
        encode_bounds(c.rescanned, 0, c, caches[thread]);
        encode_bounds(c.bounds, c.first_true, c, caches[thread]);
      });
      for (const ChunkScan& c : chunks) out.insert(out.end(), c.ids.begin(), c.ids.end());
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

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, size_t chunk_bytes) const {
  if (!valid_utf8(text)) fail("{}: the text is not valid UTF-8", impl_->what);
  std::vector<int32_t> out;
  Impl::PieceCache cache;
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
    impl_->encode_segment(text.substr(segment, i - segment), out, cache, chunk_bytes);
    out.push_back(match->id);
    i += match->content.size();
    segment = i;
  }
  impl_->encode_segment(text.substr(segment), out, cache, chunk_bytes);
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
