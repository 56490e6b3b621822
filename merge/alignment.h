// Neuron alignment of SwiGLU experts. Two experts that compute the same
// function can list their hidden neurons in any order, so averaging them
// neuron by neuron is only meaningful after matching: neuron i of the
// reference pairs with the member neuron whose (w1 row, w3 row, w2 column)
// is most similar, found as an assignment problem.
#pragma once
#include <cstdint>
#include <vector>

namespace moec {

// Neurons up to which alignment is exact (the Hungarian algorithm).
constexpr int64_t kExactAlignmentLimit = 2048;

// Minimum-cost perfect matching of an n×n cost matrix (row-major): result[i]
// is the column assigned to row i. Hungarian algorithm (O(n³)) up to
// `exact_limit` rows, greedy best-pair matching above it.
std::vector<int64_t> solve_assignment(const std::vector<double>& cost, int64_t n,
                                      int64_t exact_limit = kExactAlignmentLimit);

// Expert weights in f32: w1, w3 [inter, hidden], w2 [hidden, inter], row-major.
struct ExpertMatrices {
  int64_t inter = 0, hidden = 0;
  std::vector<float> w1, w2, w3;
};

class ThreadPool;

// The permutation p with member neuron p[i] matched to reference neuron i.
// Up to `exact_limit` neurons: the exact assignment of the (double) cosine
// similarities of the neurons' (w1 row, w3 row, w2 column). Above it (wide
// experts, whose n × n matrix would not fit): greedy over each neuron's 16
// most similar, computed in blocks by f32 GEMMs (on `pool` when given), in
// O(n) memory (alignment.cpp).
std::vector<int64_t> align_neurons(const ExpertMatrices& reference, const ExpertMatrices& member,
                                   ThreadPool* pool = nullptr, int64_t exact_limit = kExactAlignmentLimit);
// The member with its neurons reordered: neuron i becomes p[i].
ExpertMatrices permute_neurons(const ExpertMatrices& member, const std::vector<int64_t>& p);

}  // namespace moec
