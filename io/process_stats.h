// What a run cost: wall time and peak resident memory, for every stage's
// closing summary.
#pragma once
#include <chrono>
#include <cstdint>

namespace moec {

uint64_t peak_rss_bytes();
// Resident memory now (Linux /proc/self/statm; 0 where unavailable).
uint64_t current_rss_bytes();

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace moec
