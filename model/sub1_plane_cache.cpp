#include "model/sub1_plane_cache.h"

namespace moec {

void Sub1PlaneCache::set_capacity(uint64_t bytes) {
  std::lock_guard lock(mutex_);
  capacity_ = bytes;
  evict_to(capacity_);
}

namespace {

bool fits(const Sub1PlaneCache::Entry& e, const Sub1View& w) {
  return e.cols == w.cols && int64_t(e.blocks.size()) == w.n_blocks();
}

}  // namespace

std::shared_ptr<Sub1PlaneCache::Entry> Sub1PlaneCache::acquire(const Sub1View& w) {
  std::lock_guard lock(mutex_);
  if (capacity_ == 0) return nullptr;
  const void* key = w.words;
  auto it = slots_.find(key);
  if (it != slots_.end() && !fits(*it->second.entry, w)) {  // a freed matrix's codes, reused: drop its planes
    if (!it->second.entry->complete) return nullptr;
    bytes_ -= it->second.entry->bytes;
    lru_.erase(it->second.lru);
    slots_.erase(it);
    it = slots_.end();
  }
  if (it != slots_.end()) {
    if (!it->second.entry->complete) return nullptr;  // being recorded by another product
    ++stats_.hits;
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second.entry;
  }
  ++stats_.misses;
  auto entry = std::make_shared<Entry>();
  entry->blocks.resize(size_t(w.n_blocks()));
  entry->cols = w.cols;
  lru_.push_front(key);
  slots_[key] = {entry, lru_.begin()};
  return entry;
}

void Sub1PlaneCache::release(const Sub1View& w, const std::shared_ptr<Entry>& entry) {
  std::lock_guard lock(mutex_);
  if (entry->complete) return;
  auto it = slots_.find(w.words);
  if (it == slots_.end() || it->second.entry != entry) return;
  bool recorded = true;
  for (const auto& b : entry->blocks) {
    recorded &= b.ready;
    entry->bytes += b.bytes();
  }
  if (!recorded || entry->bytes > capacity_) {  // a product over part of the rows, or too large to keep
    lru_.erase(it->second.lru);
    slots_.erase(it);
    return;
  }
  entry->complete = true;
  bytes_ += entry->bytes;
  evict_to(capacity_);
}

void Sub1PlaneCache::evict_to(uint64_t capacity) {
  while (bytes_ > capacity && !lru_.empty()) {
    auto it = slots_.find(lru_.back());
    if (!it->second.entry->complete) break;  // the oldest is being recorded: try again at its release
    bytes_ -= it->second.entry->bytes;
    ++stats_.evictions;
    slots_.erase(it);
    lru_.pop_back();
  }
}

Sub1PlaneCache::Stats Sub1PlaneCache::stats() const {
  std::lock_guard lock(mutex_);
  Stats s = stats_;
  s.bytes = bytes_;
  s.entries = slots_.size();
  s.capacity = capacity_;
  return s;
}

}  // namespace moec
