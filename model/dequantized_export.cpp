#include "model/dequantized_export.h"

#include <algorithm>

#include "io/dtype.h"
#include "io/error.h"
#include "io/tensor_names.h"
#include "model/linear.h"

namespace moec {

std::vector<uint16_t> dequantized_bf16(const TensorData& tensor) {
  const WeightView w = weight_view(tensor);
  std::vector<uint16_t> out(size_t(w.rows * w.cols));
  // Decoded in chunks of whole sub1 blocks, so that no f32 copy of a whole
  // matrix is held (a Mixtral expert is 235 MB in f32).
  constexpr int64_t kChunkRows = 16 * kSub1BlockRows;
  std::vector<float> scratch;
  for (int64_t r0 = 0; r0 < w.rows; r0 += kChunkRows) {
    const int64_t n = std::min(kChunkRows, w.rows - r0);
    const float* rows = widen_rows(w, r0, n, scratch);
    for (int64_t i = 0; i < n * w.cols; ++i) out[size_t(r0 * w.cols + i)] = f32_to_bf16(rows[i]);
  }
  return out;
}

HfWriteResult write_dequantized_hf(const CheckpointSource& source, const std::filesystem::path& out_dir,
                                   const HfWriteOptions& options) {
  const ArchitectureNames& arch = *find_architecture(source.config().model_type);
  std::vector<TensorSpec> specs;
  for (const auto& t : source.tensors()) specs.push_back({hf_name(arch, t.key), t.dense_dtype().value_or(DType::BF16), t.shape});
  HfStreamWriter writer(out_dir, options, source.config_json(), source.tokenizer_files(), specs);
  for (const auto& t : source.tensors()) {
    const TensorData data = source.read(t.key);
    if (t.dense_dtype()) {
      writer.write(hf_name(arch, t.key), data.bytes());
    } else {
      const std::vector<uint16_t> bf16 = dequantized_bf16(data);  // weight_view checks the tensor
      writer.write(hf_name(arch, t.key), std::as_bytes(std::span(bf16)));
    }
    data.release_pages();  // streamed once
  }
  return writer.commit();
}

}  // namespace moec
