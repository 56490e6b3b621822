// Checks every encoded tensor of a checkpoint the way the runtime will view
// it (quant/tensor_view.h, quant/sub1.h): part sizes, format, codeword
// ranges and, for sub1, that each block's codewords cover its weights. So
// `moec inspect` refuses a lying container instead of describing it as fine.
#pragma once
#include "io/checkpoint.h"

namespace moec {

// Throws moec::Error naming the file and the first bad tensor.
void check_encoded_tensors(const CheckpointSource& source);

}  // namespace moec
