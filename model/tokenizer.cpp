#include "model/tokenizer.h"

#include <sentencepiece_processor.h>

#include "io/checkpoint.h"
#include "io/error.h"
#include "model/bpe_tokenizer.h"
#include "model/thread_pool.h"

namespace moec {

Tokenizer::Tokenizer(std::span<const std::byte> model, const std::string& what)
    : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  auto status = processor_->LoadFromSerializedProto(
      std::string_view(reinterpret_cast<const char*>(model.data()), model.size()));
  if (!status.ok()) fail("{}: tokenizer.model is not a valid sentencepiece model: {}", what, status.ToString());
  // Control pieces (<s>, </s>, Mistral's [INST] in newer vocabularies) and
  // <unk>; user-defined pieces sentencepiece already matches in text.
  for (int id = 0; id < processor_->GetPieceSize(); ++id)
    if ((processor_->IsControl(id) || processor_->IsUnknown(id)) && !processor_->IdToPiece(id).empty())
      special_pieces_.emplace_back(processor_->IdToPiece(id), id);
}

Tokenizer::Tokenizer(BpeTokenizer bpe) : bpe_(std::make_unique<BpeTokenizer>(std::move(bpe))) {}

Tokenizer Tokenizer::from_checkpoint(const CheckpointSource& source) {
  if (auto model = source.tokenizer_model()) return Tokenizer(*model, source.path().string());
  if (auto json = source.tokenizer_json())
    return Tokenizer(BpeTokenizer(std::string_view(reinterpret_cast<const char*>(json->data()), json->size()),
                                  source.path().string() + ": tokenizer.json"));
  fail("{}: has no tokenizer (neither tokenizer.model nor tokenizer.json)", source.path().string());
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;

namespace {

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

// Where to cut near `target`: a single space between two non-space bytes.
size_t find_cut(std::string_view text, size_t target) {
  for (size_t i = target; i + 1 < text.size(); ++i)
    if (text[i] == ' ' && !is_space(text[i - 1]) && !is_space(text[i + 1])) return i;
  return std::string_view::npos;
}

}  // namespace

std::vector<int32_t> Tokenizer::encode(std::string_view text, size_t chunk_bytes) const {
  if (bpe_) return bpe_->encode(text, chunk_bytes);
  std::vector<std::string_view> pieces;
  while (!text.empty()) {
    size_t cut = text.size() > chunk_bytes ? find_cut(text, std::max<size_t>(chunk_bytes, 1)) : std::string_view::npos;
    pieces.push_back(text.substr(0, cut));
    text = cut == std::string_view::npos ? std::string_view() : text.substr(cut + 1);
  }
  // Pieces encode independently (SentencePieceProcessor::Encode is const
  // and thread-safe), so a calibration corpus of 100 MB uses every core;
  // memory stays a piece's working set per thread plus the ids.
  std::vector<std::vector<int>> ids(pieces.size());
  ThreadPool pool(pieces.size() > 1 ? 0 : 1);  // one thread per core; none started for a short text
  pool.parallel_for(pieces.size(), [&](size_t i, int) {
    auto status = processor_->Encode(pieces[i], &ids[i]);
    if (!status.ok()) fail("tokenizer: cannot encode text: {}", status.ToString());
  });
  std::vector<int32_t> out;
  size_t total = 0;
  for (const auto& v : ids) total += v.size();
  out.reserve(total);
  for (auto& v : ids) {
    out.insert(out.end(), v.begin(), v.end());
    std::vector<int>().swap(v);
  }
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  if (bpe_) return bpe_->decode(std::vector<int32_t>(ids.begin(), ids.end()));
  std::string text;
  auto status = processor_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  if (!status.ok()) fail("tokenizer: cannot decode ids: {}", status.ToString());
  return text;
}

std::vector<int32_t> Tokenizer::encode_prompt(std::string_view text, int64_t bos_token_id) const {
  std::vector<int32_t> prompt;
  if (bos_id() >= 0) prompt.push_back(int32_t(bos_token_id));
  const auto ids = encode(text);
  prompt.insert(prompt.end(), ids.begin(), ids.end());
  return prompt;
}

int32_t Tokenizer::special_id(std::string_view text) const {
  if (text.empty()) return -1;
  if (bpe_) return bpe_->added_token_id(text);
  const int id = processor_->PieceToId(std::string(text));  // <unk>'s id for text that is no piece
  if (processor_->IdToPiece(id) != text) return -1;
  return processor_->IsControl(id) || processor_->IsUnknown(id) ? int32_t(id) : -1;
}

std::string Tokenizer::special_text(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return "";
  if (bpe_) return bpe_->decode({id});
  return processor_->IdToPiece(id);
}

std::vector<int32_t> Tokenizer::encode_with_specials(std::string_view text) const {
  if (bpe_) return bpe_->encode(text);
  const auto& specials = special_pieces_;
  bool first_byte[256] = {};
  for (const auto& s : specials) first_byte[static_cast<unsigned char>(s.first[0])] = true;
  std::vector<int32_t> out;
  size_t start = 0, pos = 0;
  auto flush = [&](size_t end) {
    if (end > start) {
      const auto ids = encode(text.substr(start, end - start));
      out.insert(out.end(), ids.begin(), ids.end());
    }
  };
  while (pos < text.size()) {
    const std::pair<std::string, int32_t>* best = nullptr;
    if (first_byte[static_cast<unsigned char>(text[pos])])
      for (const auto& s : specials)
        if (text.compare(pos, s.first.size(), s.first) == 0 &&
            (!best || s.first.size() > best->first.size()))
          best = &s;
    if (!best) {
      ++pos;
      continue;
    }
    flush(pos);
    out.push_back(best->second);
    pos += best->first.size();
    start = pos;
  }
  flush(text.size());
  return out;
}

int Tokenizer::vocab_size() const { return bpe_ ? int(bpe_->vocab_size()) : processor_->GetPieceSize(); }
int Tokenizer::bos_id() const { return bpe_ ? -1 : processor_->bos_id(); }
int Tokenizer::eos_id() const { return bpe_ ? -1 : processor_->eos_id(); }

}  // namespace moec
