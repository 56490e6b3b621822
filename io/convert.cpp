#include "io/convert.h"

#include "io/checksum.h"
#include "io/container.h"

namespace moec {

ConvertResult convert_to_container(const CheckpointSource& source, const std::filesystem::path& out,
                                   bool overwrite, const std::string& command_line, const LayerProgress& progress) {
  Provenance provenance{command_line, std::filesystem::absolute(source.path()).string(), std::string(source.format()),
                        describe_files(source.files()), nullptr};
  ContainerWriter writer(out, overwrite, source.config_json(), provenance);
  writer.write_tokenizers(source.tokenizer_files());
  const ArchitectureNames& arch = *find_architecture(source.config().model_type);
  const int layers = static_cast<int>(source.config().num_layers);
  ConvertResult result;
  int current_layer = -1;
  for (const TensorInfo& info : source.tensors()) {
    if (progress && info.key.layer != current_layer && current_layer >= 0) progress(current_layer, layers);
    current_layer = info.key.layer;
    TensorData data = source.read(info.key);
    writer.write_dense(info, hf_name(arch, info.key), data.bytes());
    data.release_pages();  // streamed once: memory stays one tensor, not the model
    result.tensor_bytes += info.nbytes;
    ++result.tensors;
  }
  writer.commit();
  if (progress) progress(layers, layers);
  result.file_bytes = std::filesystem::file_size(out);
  return result;
}

}  // namespace moec
