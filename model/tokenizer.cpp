#include "model/tokenizer.h"

#include <sentencepiece_processor.h>

#include "io/checkpoint.h"
#include "io/error.h"

namespace moec {

Tokenizer::Tokenizer(std::span<const std::byte> model, const std::string& what)
    : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  auto status = processor_->LoadFromSerializedProto(
      std::string_view(reinterpret_cast<const char*>(model.data()), model.size()));
  if (!status.ok()) fail("{}: tokenizer.model is not a valid sentencepiece model: {}", what, status.ToString());
}

Tokenizer Tokenizer::from_checkpoint(const CheckpointSource& source) {
  auto bytes = source.tokenizer_model();
  if (!bytes) fail("{}: has no tokenizer.model", source.path().string());
  return Tokenizer(*bytes, source.path().string());
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  auto status = processor_->Encode(text, &ids);
  if (!status.ok()) fail("tokenizer: cannot encode text: {}", status.ToString());
  return {ids.begin(), ids.end()};
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string text;
  auto status = processor_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  if (!status.ok()) fail("tokenizer: cannot decode ids: {}", status.ToString());
  return text;
}

int Tokenizer::vocab_size() const { return processor_->GetPieceSize(); }
int Tokenizer::bos_id() const { return processor_->bos_id(); }
int Tokenizer::eos_id() const { return processor_->eos_id(); }

}  // namespace moec
