#include "io/hf_writer.h"

#include <fstream>

#include "io/error.h"

namespace moec {

namespace fs = std::filesystem;

namespace {

// Consecutive runs of tensors, each run at most max_bytes (a single larger
// tensor gets a shard of its own).
std::vector<std::vector<TensorSpec>> plan_shards(std::vector<TensorSpec> specs, uint64_t max_bytes) {
  std::vector<std::vector<TensorSpec>> shards(1);
  uint64_t used = 0;
  for (auto& t : specs) {
    if (!shards.back().empty() && used + t.nbytes() > max_bytes) {
      shards.emplace_back();
      used = 0;
    }
    used += t.nbytes();
    shards.back().push_back(std::move(t));
  }
  return shards;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out.flush()) fail("{}: write failed", path.string());
}

std::string shard_name(size_t index, size_t count) {
  return count == 1 ? "model.safetensors" : fmt::format("model-{:05d}-of-{:05d}.safetensors", index + 1, count);
}

}  // namespace

HfStreamWriter::HfStreamWriter(const fs::path& out_dir, const HfWriteOptions& options, const nlohmann::json& config,
                               const TokenizerFiles& tokenizer, std::vector<TensorSpec> specs)
    : output_(out_dir, options.overwrite, AtomicOutput::Kind::Directory), shards_(plan_shards(std::move(specs), options.max_shard_bytes)) {
  output_.make_directory();
  write_text(output_.temp_path() / "config.json", config.dump(2) + "\n");
  if (tokenizer.model)
    write_text(output_.temp_path() / "tokenizer.model",
               std::string(reinterpret_cast<const char*>(tokenizer.model->data()), tokenizer.model->size()));
  if (tokenizer.json)
    write_text(output_.temp_path() / "tokenizer.json",
               std::string(reinterpret_cast<const char*>(tokenizer.json->data()), tokenizer.json->size()));
  if (tokenizer.config)
    write_text(output_.temp_path() / "tokenizer_config.json",
               std::string(reinterpret_cast<const char*>(tokenizer.config->data()), tokenizer.config->size()));
  result_.shards = shards_.size();
  open_shard();
}

HfStreamWriter::~HfStreamWriter() = default;

void HfStreamWriter::open_shard() {
  writer_ = std::make_unique<SafetensorsWriter>(output_.temp_path() / shard_name(shard_, shards_.size()),
                                                shards_[shard_]);
}

void HfStreamWriter::write(std::string_view name, std::span<const std::byte> bytes) {
  if (shard_ >= shards_.size()) fail("{}: tensor '{}': more tensors than declared", output_.target().string(), name);
  writer_->write(name, bytes);
  weight_map_[std::string(name)] = shard_name(shard_, shards_.size());
  result_.bytes += bytes.size();
  ++result_.tensors;
  if (++next_ == shards_[shard_].size()) {
    writer_->finish();
    next_ = 0;
    if (++shard_ < shards_.size()) open_shard();
  }
}

HfWriteResult HfStreamWriter::commit() {
  if (shard_ < shards_.size())
    fail("{}: tensor '{}': never written", output_.target().string(), shards_[shard_][next_].name);
  if (shards_.size() > 1) {
    nlohmann::ordered_json index{{"metadata", {{"total_size", result_.bytes}}}, {"weight_map", weight_map_}};
    write_text(output_.temp_path() / "model.safetensors.index.json", index.dump(2) + "\n");
  }
  output_.commit();
  return result_;
}

HfWriteResult write_hf_checkpoint(const CheckpointSource& source, const fs::path& out_dir,
                                  const HfWriteOptions& options) {
  const ArchitectureNames& arch = *find_architecture(source.config().model_type);
  std::vector<TensorSpec> specs;
  for (const auto& t : source.tensors()) {
    if (!t.dense_dtype())
      fail("{}: tensor '{}': encoding '{}' has no Hugging Face equivalent; export --dequantize writes it as bf16",
           source.path().string(), t.name, t.label());
    specs.push_back({hf_name(arch, t.key), *t.dense_dtype(), t.shape});
  }
  HfStreamWriter writer(out_dir, options, source.config_json(), source.tokenizer_files(), specs);
  for (const auto& t : source.tensors()) {
    const TensorData data = source.read(t.key);
    writer.write(hf_name(arch, t.key), data.bytes());
    data.release_pages();  // streamed once: memory stays one tensor, not the model
  }
  return writer.commit();
}

}  // namespace moec
