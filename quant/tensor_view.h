// Reading quantized tensors from a checkpoint: checks an encoded tensor's
// parts against its format and views them (zero-copy), and describes a
// QuantizedMatrix as a tensor to write.
#pragma once
#include <span>
#include <vector>

#include "io/checkpoint.h"
#include "quant/quantized_matrix.h"

namespace moec {

// Throws moec::Error naming the tensor when the format is unknown or a part
// has the wrong size (wrong code length, missing scales, ...).
QuantizedView quantized_view(const TensorData& tensor);

// Fills info.encoding/format/parts/nbytes for `matrix` and returns the part
// buffers in the same order (views into matrix).
std::vector<std::span<const std::byte>> describe_quantized(const QuantizedMatrix& matrix, TensorInfo& info);

}  // namespace moec
