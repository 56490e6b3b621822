// Continuous batching over one Model: up to `parallel` sequences, each in its
// own KV cache slot, advanced together one step at a time (as llama.cpp's
// server slots and vLLM's scheduler do).
//
// One engine thread runs the loop; each step
//   1. admits queued jobs into free slots (first come, first served) and
//      drops cancelled ones (a client that went away frees its slot here);
//   2. runs one prefill chunk (kPrefillChunkTokens) of every sequence still
//      reading its prompt, each as its own forward call, so a long prompt
//      advances a chunk per step instead of stalling running streams;
//   3. runs one decode step: the next token of every generating sequence,
//      all sequences in one forward call (tokens grouped per expert by the
//      MoE block, so the batched kernels do the work), in groups of at most
//      kBatchInvariantTokens sequences.
// Why the groups and the per-request prefill: every kernel a call of at most
// kBatchInvariantTokens tokens uses gives each token the same floats whatever
// else is in the batch (model/linear.h), and a prefill chunk here is the same
// forward call `moec generate` makes. So a greedy (or seeded) request gets
// the same tokens alone, batched with others, or from `moec generate`.
//
// Jobs talk back through their JobChannel: events in order (prompt logprobs
// when asked, each generated token, then the end), read by the HTTP thread
// that owns the request.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "model/sampler.h"

namespace moec {

class Model;
class ServeMetrics;
struct KvCache;

struct CompletionJob {
  std::vector<int32_t> prompt;  // non-empty, ids < vocab
  int64_t max_tokens = 16;      // 0: only score the prompt (echo)
  SamplerOptions sampling;
  std::vector<int32_t> stop_tokens;  // EOS (and a chat template's end of turn): end the completion, not part of it
  int top_logprobs = -1;    // -1: no logprobs; 0: the chosen token's; N: and the N most likely
  bool echo = false;        // also the prompt tokens' logprobs (when top_logprobs >= 0)
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // most likely first
};

struct JobEvent {
  enum class Kind { PromptLogprobs, Token, Finished, Failed } kind = Kind::Token;
  // PromptLogprobs: entry i is prompt token i+1 given the tokens before it.
  std::vector<TokenLogprob> prompt;
  int32_t token = 0;                     // Token
  std::optional<TokenLogprob> logprob;   // Token, when asked for
  std::string finish_reason;             // Finished: "stop" (EOS) or "length"
  std::string error;                     // Failed: why (e.g. shutting down)
  int64_t status = 500;                  // Failed: HTTP status that fits
};

// One job's events, produced by the engine thread, consumed by one reader.
class JobChannel {
 public:
  // The next event, waiting up to `timeout`; none on timeout.
  std::optional<JobEvent> next(std::chrono::milliseconds timeout);
  // Asks the engine to drop the job (the slot is freed at the next step).
  void cancel();
  bool cancelled() const;

  void push(JobEvent event);  // engine side

 private:
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<JobEvent> events_;
  bool cancelled_ = false;
};

struct EngineOptions {
  int64_t parallel = 8;    // KV cache slots
  int64_t ctx = 0;         // positions per slot; 0: min(max_position_embeddings, 4096)
  int64_t max_queue = 64;  // jobs waiting for a slot
};

class Engine {
 public:
  Engine(Model& model, const EngineOptions& options, ServeMetrics* metrics = nullptr);
  ~Engine();  // shutdown()
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  int64_t ctx() const { return ctx_; }
  int64_t parallel() const { return parallel_; }
  int64_t vocab_size() const;
  uint64_t kv_cache_bytes() const;
  // Queues a job; none when every slot is busy and the queue is full.
  std::shared_ptr<JobChannel> submit(CompletionJob job);
  // Stops taking jobs, fails the queued and running ones ("shutting down",
  // 503), and joins the loop. Idempotent.
  void shutdown();
  struct Load {
    int64_t active = 0, queued = 0;
  };
  Load load() const;

 private:
  struct Pending {
    CompletionJob job;
    std::shared_ptr<JobChannel> channel;
  };
  struct Slot;
  void loop();
  bool admit();  // under mutex_; false when stopping
  void prefill(Slot& slot);
  void decode(std::vector<Slot*>& batch);
  // Samples the slot's next token from its logits row; emits it or ends the job.
  void advance(Slot& slot, const float* logits);
  void finish(Slot& slot, const std::string& reason);
  void fail(Slot& slot, const std::string& error, int64_t status);
  void release(Slot& slot);

  Model& model_;
  ServeMetrics* metrics_;
  int64_t parallel_, ctx_, max_queue_;
  std::unique_ptr<KvCache> cache_;
  std::vector<std::unique_ptr<Slot>> slots_;

  mutable std::mutex mutex_;
  std::condition_variable work_;
  std::deque<Pending> queue_;
  int64_t active_ = 0;  // slots holding a job (under mutex_)
  uint64_t admitted_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace moec
