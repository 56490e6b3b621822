// Entry point of the GPU tests: exits 77 (ctest's "skipped", see
// SKIP_RETURN_CODE) when no CUDA device is present, so CI without a GPU
// reports them as skipped rather than passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "quant/cuda/bf16_convert.h"

int main(int argc, char** argv) {
  if (moec::cuda::device_count() == 0) {
    std::puts("no CUDA device: GPU tests skipped");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
