// A small byte-level BPE tokenizer.json built in code (the repo ships no
// tokenizer.json of its own): GPT-2's 256 byte symbols, a few dozen merges of
// common English pairs, Qwen2's Split regex + ByteLevel, NFC, and added
// tokens. Used by the tokenizer fuzz targets and their seed corpus.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moec::fuzz {

inline std::string byte_symbol(int b) {
  // GPT-2's bytes_to_unicode as UTF-8.
  uint32_t cp;
  const bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  if (direct) {
    cp = uint32_t(b);
  } else {
    cp = 256;
    for (int i = 0; i < b; ++i)
      if (!((i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF))) ++cp;
  }
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

inline std::string synthetic_tokenizer_json() {
  using nlohmann::json;
  json vocab = json::object();
  int next = 0;
  for (int b = 0; b < 256; ++b) vocab[byte_symbol(b)] = next++;
  const std::string space = byte_symbol(' ');
  const std::vector<std::pair<std::string, std::string>> pairs{  // each part a byte or an earlier merge
      {"t", "h"}, {"h", "e"}, {"th", "e"}, {space, "t"}, {space + "t", "he"}, {"i", "n"}, {"e", "r"},
      {"a", "n"}, {"o", "n"}, {"r", "e"}, {space, "a"}, {"in", "g"}, {space, "s"}, {"e", "d"},
      {space, "o"}, {"o", "f"}, {space + "o", "f"}, {"an", "d"}, {"n", "d"}, {space + "a", "nd"},
      {"e", "s"}, {space, "w"}};
  json merges = json::array();
  for (const auto& [a, b] : pairs) {
    merges.push_back(a + " " + b);
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
  }
  json added = json::array();
  for (const char* content : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
    added.push_back({{"id", next++}, {"content", content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  const char* regex =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  json tok = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
                      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
                       {"use_regex", false}}})}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab},
        {"merges", merges}}}};
  return tok.dump(1);
}

}  // namespace moec::fuzz
