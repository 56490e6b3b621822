// Checks every encoded tensor of a checkpoint the way the runtime will view
// it (quant/tensor_view.h, quant/sub1.h): part sizes, format, codeword
// ranges and, for sub1, that each block's codewords cover its weights. So
// `moec inspect` refuses a lying container instead of describing it as fine.
#pragma once
#include "io/checkpoint.h"

namespace moec {

// Throws moec::Error naming the file and the first bad tensor.
void check_encoded_tensors(const CheckpointSource& source);

// `moec inspect --verify`: decodes every tensor once, as the runtime would
// (dense ones widened to f32, encoded ones through the CPU's kernels, a block
// of rows at a time), and throws naming the file, tensor and position of the
// first value that is not a finite number. Returns the values checked.
uint64_t verify_all_tensors(const CheckpointSource& source);

}  // namespace moec
