// `moec bench kernels`: the sub1 kernels (quant/sub1_kernels.h) next to dense
// products of the same shape measured in the same run.
//   - Mixtral's expert shapes (14336×4096: w1/w3, 4096×14336: w2) with
//     synthetic i.i.d. ternary weights at p(0) = 0.885 (QMoE's measured
//     zero share);
//   - optionally a sub1 container's real experts (all tensors of a shape
//     multiplied in turn, like a layer), next to their dequantized values
//     stored as dense bf16 and f32.
// For each: bits per weight with every stored byte, decode throughput
// (reference scalar decoder and the kernel decoder), and the time of a
// matrix-vector product, batch 8 and batch 32 through linear() (the runtime's
// entry point) with sub1, bf16 and f32 weights; ratios are dense time / sub1
// time; "cached": the sub1 products replayed from the expert plane cache
// (model/sub1_plane_cache.h), as generation runs them on a hit. Each figure
// is measured for every instruction set the CPU runs
// (or the one asked for), sub1 and dense through the same ISA's kernels.
// With a CUDA device (builds with nvcc): the synthetic shapes' GPU
// matvec next to cuBLAS's bf16 GEMV, and batch 16 next to 16 matvecs.
#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace moec {

struct KernelBenchOptions {
  std::filesystem::path model;  // a sub1 container, optional
  int threads = 2;
  bool synthetic = true;
  double min_seconds = 0.2;  // per figure: repeat until this long, median of 5 such runs
  std::string isa = "all";   // an instruction set (io/cpu_isa.h), or every one this CPU runs
};

nlohmann::ordered_json run_kernel_bench(const KernelBenchOptions& options);
std::string format_kernel_bench(const nlohmann::ordered_json& result);

}  // namespace moec
