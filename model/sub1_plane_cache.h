// A bounded cache of sub1 experts decoded into the kernels' bit planes
// (quant/sub1_kernels.h), for generation and serving.
//
// Generating one token multiplies each routed expert with one activation
// row, and consecutive tokens mostly reuse the same experts (Eliseev & Mazur
// 2023). Decoding the Tunstall code costs more than the product itself; the
// planes it yields take 2 bits per weight (1/8 of bf16). A matrix used by a
// small batch is recorded on first use and replayed afterwards, the same
// bits either way; least recently used matrices are dropped beyond the
// capacity.
//
// One cache per model (keys are the matrices' code pointers, unique while
// the model's checkpoint is open; an entry whose shape does not match the
// matrix asked for is dropped, not replayed). Thread-safe; entries in use by
// a running product stay alive until it releases them.
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "quant/sub1_kernels.h"

namespace moec {

class Sub1PlaneCache {
 public:
  struct Entry {
    std::vector<Sub1BlockPlanes> blocks;  // one per 16-row block
    int64_t cols = 0;                     // of the matrix recorded
    bool complete = false;               // every block recorded
    uint64_t bytes = 0;
  };
  struct Stats {
    uint64_t hits = 0, misses = 0, evictions = 0, bytes = 0, entries = 0, capacity = 0;
    double hit_rate() const { return hits + misses ? double(hits) / double(hits + misses) : 0.0; }
  };

  explicit Sub1PlaneCache(uint64_t capacity_bytes = 0) : capacity_(capacity_bytes) {}
  void set_capacity(uint64_t bytes);

  // The planes of w for one product over all its rows: a complete entry to
  // replay (a hit), a new one to record into (a miss), or null (no capacity,
  // or an entry another product is recording).
  std::shared_ptr<Entry> acquire(const Sub1View& w);
  // After the product: a recorded entry is complete and counted against the
  // capacity (dropped if alone larger than it); least recently used entries
  // are evicted down to the capacity.
  void release(const Sub1View& w, const std::shared_ptr<Entry>& entry);

  Stats stats() const;

 private:
  struct Slot {
    std::shared_ptr<Entry> entry;
    std::list<const void*>::iterator lru;
  };
  void evict_to(uint64_t capacity);  // holds mutex_

  mutable std::mutex mutex_;
  uint64_t capacity_;
  uint64_t bytes_ = 0;
  Stats stats_;
  std::list<const void*> lru_;  // most recently used first
  std::unordered_map<const void*, Slot> slots_;
};

}  // namespace moec
