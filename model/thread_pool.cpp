#include "model/thread_pool.h"

#include <chrono>
#include <system_error>
#include <utility>

#include "io/error.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define MOEC_PAUSE() _mm_pause()
#else
#define MOEC_PAUSE() std::this_thread::yield()
#endif

namespace moec {
namespace {

// How long an idle worker spins before sleeping: longer than the gaps
// between the loops of one decode step, short enough not to burn a core
// between user-visible steps.
constexpr auto kSpin = std::chrono::microseconds(50);

}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  try {
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
  } catch (const std::system_error& e) {
    const size_t started = workers_.size() + 1;
    shutdown();  // stop and join the threads already running
    throw Error(fmt::format("cannot start {} threads (started {}): {}", threads, started, e.what()));
  }
}

ThreadPool::~ThreadPool() { shutdown(); }

void ThreadPool::shutdown() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
}

void ThreadPool::run_items(int thread) {
  for (size_t i = next_.fetch_add(1); i < items_; i = next_.fetch_add(1)) {
    try {
      (*job_)(i, thread);
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::current_exception();
      next_.store(items_);  // hand out nothing more
    }
  }
}

bool ThreadPool::wait_for_work(uint64_t seen) {
  auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (int spins = 0; generation_.load() == seen; ++spins) {
    if (stop_) return false;
    MOEC_PAUSE();
    if ((spins & 63) == 0 && std::chrono::steady_clock::now() > deadline) {
      std::unique_lock lock(mutex_);
      ++sleepers_;
      wake_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
      --sleepers_;
    }
  }
  return !stop_;
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  while (wait_for_work(seen)) {
    seen = generation_.load();
    run_items(index);
    pending_.fetch_sub(1);
  }
}

void ThreadPool::parallel_for(size_t items, const std::function<void(size_t, int)>& fn) {
  if (items == 0) return;
  if (workers_.empty() || items == 1) {
    for (size_t i = 0; i < items; ++i) fn(i, 0);
    return;
  }
  job_ = &fn;
  items_ = items;
  error_ = nullptr;
  next_.store(0);
  pending_.store(static_cast<int>(workers_.size()));
  generation_.fetch_add(1);
  if (sleepers_.load() > 0) {
    std::lock_guard lock(mutex_);
    wake_.notify_all();
  }
  run_items(0);
  while (pending_.load() != 0) MOEC_PAUSE();
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

}  // namespace moec
