// A fixed set of worker threads running parallel_for loops. Work items are
// handed out dynamically, but every item is computed whole by one thread with
// the same code, so results do not depend on the thread count as long as the
// caller's items do not (see linear.h).
//
// Decoding one token issues ~25 parallel loops of a few microseconds each, so
// waking threads through a condition variable would cost more than the work:
// idle workers spin briefly on an atomic generation counter before sleeping.
#pragma once
#include <algorithm>
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

// Runs fn(begin, end) over [0, rows) in chunks of `chunk` rows (the last
// may be shorter), on every thread when there is more than one chunk: for
// the per-token element-wise steps between GEMMs (norms, RoPE, routing,
// scatter), which would otherwise run on one thread while the others wait.
// The chunks do not depend on the thread count, so neither do the results
// (element-wise kernels may round a buffer's tail differently).
template <typename Fn>
void parallel_rows(ThreadPool& pool, int64_t rows, int64_t chunk, Fn&& fn) {
  if (rows <= 0) return;
  chunk = std::max<int64_t>(chunk, 1);
  const int64_t chunks = (rows + chunk - 1) / chunk;
  if (chunks == 1) return fn(int64_t(0), rows);
  pool.parallel_for(size_t(chunks), [&](size_t c, int) {
    const int64_t begin = int64_t(c) * chunk;
    fn(begin, std::min(rows, begin + chunk));
  });
}

}  // namespace moec
