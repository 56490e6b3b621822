// Resource caps on what a file or request may claim, checked before anything
// is allocated from the claim (docs/reliability.md lists them with the
// reasons). Each is far above any real model: Mixtral 8x22B has 56 layers,
// 8 experts, hidden 6144; DeepSeek-V3 61 layers of 256 experts; Switch-c2048
// 2048 experts; the largest vocabularies ~256k; the largest tensors (an
// embedding of 256k × 16k) ~4·10⁹ elements.
#pragma once
#include <cstddef>
#include <cstdint>

namespace moec::limits {

// safetensors: the format's own cap on the JSON header.
inline constexpr uint64_t kSafetensorsHeaderBytes = 100'000'000;
// Dimensions of any tensor, from any file: rank, and elements of one tensor
// (2^36 = 6.9·10¹⁰; a claimed 10¹² element tensor is refused before any
// allocation or size arithmetic can overflow).
inline constexpr size_t kMaxRank = 8;
inline constexpr uint64_t kMaxTensorElements = uint64_t{1} << 36;
// Tensor names (safetensors keys, HF names) in bytes.
inline constexpr size_t kMaxNameBytes = 1024;
// config.json: any size field (hidden, vocab, widths, heads, positions).
inline constexpr int64_t kMaxConfigDimension = int64_t{1} << 24;
inline constexpr int64_t kMaxLayers = 4096;
inline constexpr int64_t kMaxExperts = 65536;
// Expert matrices per model (layers × experts): bounds the tensor list a
// config makes every reader build (Switch-c2048: 61k; DeepSeek-V3: 47k).
inline constexpr int64_t kMaxExpertsPerModel = int64_t{1} << 20;
// Tokenizer files (sentencepiece model, tokenizer.json) read into memory.
inline constexpr uint64_t kMaxTokenizerBytes = uint64_t{256} << 20;
// A container dataset stored chunked/filtered (other tools' files) is read
// into memory: it may not claim more than this many times its stored bytes
// (zlib's best ratio is ~1032:1), so a small file cannot ask for gigabytes.
inline constexpr uint64_t kMaxInflation = 1100;

// Shard file names in an index (NAME_MAX of Linux file systems).
inline constexpr size_t kMaxShardNameBytes = 255;
// Container string attributes (config and provenance JSON are a few kB).
inline constexpr size_t kMaxStringAttributeBytes = size_t{16} << 20;
// Distinct sub1 dictionaries (trit_counts) in one container: moec writes one
// per model, and each costs a build of ~65k codewords at load.
inline constexpr size_t kMaxSub1DictionariesPerFile = 4;

}  // namespace moec::limits
