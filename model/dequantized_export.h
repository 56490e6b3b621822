// `moec export --dequantize`: any checkpoint, quantized or not, as a plain
// bf16 Hugging Face folder that transformers (or llama.cpp's converter)
// loads without knowing moec's codes. Dense tensors are copied as stored;
// packed k-bit, ternary and sub1 tensors are decoded by the runtime's own
// decoders and rounded to bf16 (round to nearest even). Streams one tensor
// at a time; the folder appears only when complete.
#pragma once
#include <filesystem>

#include "io/checkpoint.h"
#include "io/hf_writer.h"

namespace moec {

HfWriteResult write_dequantized_hf(const CheckpointSource& source, const std::filesystem::path& out_dir,
                                   const HfWriteOptions& options);

// The bf16 bytes of one encoded (quantized) matrix, [rows, cols] row-major.
std::vector<uint16_t> dequantized_bf16(const TensorData& tensor);

}  // namespace moec
