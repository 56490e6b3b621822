#include "io/hf_writer.h"

#include <fstream>

#include "io/atomic_output.h"
#include "io/error.h"
#include "io/safetensors_writer.h"

namespace moec {

namespace fs = std::filesystem;

namespace {

// Consecutive runs of tensors, each run at most max_bytes (a single larger
// tensor gets a shard of its own).
std::vector<std::vector<const TensorInfo*>> plan_shards(const std::vector<TensorInfo>& tensors, uint64_t max_bytes) {
  std::vector<std::vector<const TensorInfo*>> shards(1);
  uint64_t used = 0;
  for (const auto& t : tensors) {
    if (!shards.back().empty() && used + t.nbytes > max_bytes) {
      shards.emplace_back();
      used = 0;
    }
    shards.back().push_back(&t);
    used += t.nbytes;
  }
  return shards;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out.flush()) fail("{}: write failed", path.string());
}

}  // namespace

HfWriteResult write_hf_checkpoint(const CheckpointSource& source, const fs::path& out_dir,
                                  const HfWriteOptions& options) {
  const ArchitectureNames& arch = *find_architecture(source.config().model_type);
  for (const auto& t : source.tensors())
    if (!t.dense_dtype())
      fail("{}: tensor '{}': encoding '{}' has no Hugging Face equivalent; only dense checkpoints export",
           source.path().string(), t.name, t.encoding);

  AtomicOutput output(out_dir, options.overwrite);
  output.make_directory();
  const fs::path dir = output.temp_path();
  write_text(dir / "config.json", source.config_json().dump(2) + "\n");
  if (auto tokenizer = source.tokenizer_model())
    write_text(dir / "tokenizer.model", std::string(reinterpret_cast<const char*>(tokenizer->data()), tokenizer->size()));

  auto shards = plan_shards(source.tensors(), options.max_shard_bytes);
  HfWriteResult result{0, shards.size(), 0};
  nlohmann::ordered_json weight_map;
  for (size_t s = 0; s < shards.size(); ++s) {
    std::string file = shards.size() == 1 ? "model.safetensors"
                                          : fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards.size());
    std::vector<TensorSpec> specs;
    for (const TensorInfo* t : shards[s]) specs.push_back({hf_name(arch, t->key), *t->dense_dtype(), t->shape});
    SafetensorsWriter writer(dir / file, specs);
    for (size_t i = 0; i < specs.size(); ++i) {
      TensorData data = source.read(shards[s][i]->key);
      writer.write(specs[i].name, data.bytes());
      weight_map[specs[i].name] = file;
      result.bytes += data.bytes().size();
      ++result.tensors;
    }
    writer.finish();
  }
  if (shards.size() > 1) {
    nlohmann::ordered_json index{{"metadata", {{"total_size", result.bytes}}}, {"weight_map", weight_map}};
    write_text(dir / "model.safetensors.index.json", index.dump(2) + "\n");
  }
  output.commit();
  return result;
}

}  // namespace moec
