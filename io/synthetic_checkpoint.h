// Mixtral-shaped checkpoints with seeded random weights, for measuring
// memory and time at real layer sizes without downloading 90 GB
// (`moec synth`, README "Large models").
//
// The folder is what a Hugging Face Mixtral checkpoint is: config.json,
// sharded bf16 safetensors with model.safetensors.index.json, and the
// tokenizer given (the shipped model's 4096-piece sentencepiece model). Its
// ids are all below 4096, so embedding rows 4096..vocab-1 are never read;
// lm_head still scores all vocab_size logits, as the real model would.
//
// Weights: N(0, 0.02²) (Hugging Face's initializer_range for Mixtral) for
// every matrix, norm weights 1. Each tensor is filled in chunks of 2^20
// values, each chunk from its own generator seeded by (seed, tensor, chunk),
// so the bytes depend on the seed only, not on the thread count.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "io/hf_writer.h"

namespace moec {

struct SyntheticOptions {
  std::string shape = "mixtral-8x7b";  // mixtral-8x7b, mixtral-8x22b, mini
  int layers = 2;                      // 0: the shape's own number of layers
  uint64_t seed = 1;
  std::filesystem::path tokenizer;  // a tokenizer.model or tokenizer.json to copy
  int threads = 0;                  // 0: all hardware threads
  HfWriteOptions write;
};

// The config.json of a named shape with `layers` layers (0: as published).
nlohmann::json synthetic_config(const std::string& shape, int layers);
std::string synthetic_shapes();  // "mixtral-8x7b, mixtral-8x22b, mini"

HfWriteResult write_synthetic_checkpoint(const std::filesystem::path& out_dir, const SyntheticOptions& options);

}  // namespace moec
