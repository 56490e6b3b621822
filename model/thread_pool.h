// A fixed set of worker threads running parallel_for loops. Work items are
// handed out dynamically, but every item is computed whole by one thread with
// the same code, so results do not depend on the thread count as long as the
// caller's items do not (see linear.h).
//
// Decoding one token issues ~25 parallel loops of a few microseconds each, so
// waking threads through a condition variable would cost more than the work:
// idle workers spin briefly on an atomic generation counter before sleeping.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moec {

class ThreadPool {
 public:
  // threads <= 0: one per hardware thread. The calling thread is one of them.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // Runs fn(item, thread_index) for item in [0, items); returns when all are
  // done. thread_index < size() selects per-thread scratch memory. If an item
  // throws, no further items start, and the first exception is rethrown
  // here once every thread has left the loop.
  void parallel_for(size_t items, const std::function<void(size_t item, int thread)>& fn);

 private:
  void worker_loop(int index);
  void shutdown();
  void run_items(int thread);
  // Waits for a generation other than `seen`; false when stopping.
  bool wait_for_work(uint64_t seen);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  const std::function<void(size_t, int)>* job_ = nullptr;
  size_t items_ = 0;
  std::atomic<size_t> next_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;  // first exception of the current loop (under mutex_)
};

}  // namespace moec
