// Expert-parallel quantization across the processes of an MPI job
// (io/mpi_world.h). Every rank runs the same calibration forward; expert e of
// a layer is quantized by rank e mod R only; then each result is broadcast
// from its owner, so every rank holds the same quantized layer and continues
// identically through it (the output is bit-identical to one process: an
// expert's codes depend on nothing but its own inputs). Rank 0 writes.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "io/mpi_world.h"
#include "quant/quantized_matrix.h"

namespace moec {

struct ExpertResult {
  QuantizedMatrix w1, w2, w3;
  std::vector<std::string> fallbacks;
  double hessian_seconds = 0, gptq_seconds = 0;  // this expert's thread time in each
};

inline bool owns_expert(const MpiWorld& world, size_t expert) { return int(expert % size_t(world.size())) == world.rank(); }

// The bytes a result travels as, and back (exact: codes, f16 scales, zeros,
// the format with its level scale, the notes).
std::vector<std::byte> serialize(const ExpertResult& r);
ExpertResult deserialize_expert_result(const std::vector<std::byte>& bytes);

// After each rank quantized the experts it owns: every rank gets them all.
void share_expert_results(std::vector<ExpertResult>& results, MpiWorld& world);

// The calibration stream's forward passes split the same way: batch b of
// windows is computed by rank b mod R, then every rank gets every batch's
// rows of x (slices of `slice` floats; the last may be shorter).
inline bool owns_batch(const MpiWorld& world, int64_t batch) { return int(batch % world.size()) == world.rank(); }
void share_batches(std::vector<float>& x, size_t slice, MpiWorld& world);

}  // namespace moec
