#include "serve/engine.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <numeric>
#include <span>

#include "model/attention.h"
#include "model/generate.h"
#include "model/linear.h"
#include "model/model.h"
#include "serve/metrics.h"

namespace moec {

// ---- JobChannel -------------------------------------------------------------

std::optional<JobEvent> JobChannel::next(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!ready_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return std::nullopt;
  JobEvent event = std::move(events_.front());
  events_.pop_front();
  return event;
}

void JobChannel::cancel() {
  std::lock_guard lock(mutex_);
  cancelled_ = true;
}

bool JobChannel::cancelled() const {
  std::lock_guard lock(mutex_);
  return cancelled_;
}

void JobChannel::push(JobEvent event) {
  {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  ready_.notify_one();
}

// ---- logprobs ---------------------------------------------------------------

namespace {

// log p(token) under softmax(logits), and the `top` most likely tokens
// (ties to the lower id). Accumulated in double: logprobs are compared
// across requests and against other implementations.
TokenLogprob logprob_of(std::span<const float> logits, int32_t token, int top) {
  const float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float v : logits) sum += std::exp(double(v) - max);
  const double log_z = double(max) + std::log(sum);
  TokenLogprob r;
  r.token = token;
  r.logprob = float(double(logits[size_t(token)]) - log_z);
  if (top > 0) {
    thread_local std::vector<int32_t> ids;  // the engine thread's, reused token after token
    ids.resize(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    const size_t k = std::min(ids.size(), size_t(top));
    std::partial_sort(ids.begin(), ids.begin() + ptrdiff_t(k), ids.end(), [&](int32_t a, int32_t b) {
      return logits[size_t(a)] != logits[size_t(b)] ? logits[size_t(a)] > logits[size_t(b)] : a < b;
    });
    for (size_t i = 0; i < k; ++i) r.top.emplace_back(ids[i], float(double(logits[size_t(ids[i])]) - log_z));
  }
  return r;
}

}  // namespace

// ---- Engine -----------------------------------------------------------------

struct Engine::Slot {
  int64_t index = 0;
  std::optional<Pending> pending;  // the job it runs; none when free
  uint64_t order = 0;              // admission order
  int64_t prefilled = 0;           // prompt tokens in the cache
  int64_t generated = 0;           // tokens sent
  int32_t next = -1;               // the last token sent, not yet in the cache
  bool decoding = false;
  std::optional<Sampler> sampler;
  std::vector<TokenLogprob> prompt_logprobs;
};

Engine::Engine(Model& model, const EngineOptions& options, ServeMetrics* metrics)
    : model_(model), metrics_(metrics), parallel_(options.parallel), max_queue_(options.max_queue) {
  const int64_t max_positions = model.config().max_position_embeddings;
  ctx_ = options.ctx > 0 ? options.ctx : std::min<int64_t>(max_positions, 4096);
  if (parallel_ < 1) throw std::invalid_argument("the number of parallel sequences must be at least 1");
  if (max_queue_ < 0) throw std::invalid_argument("the queue length must not be negative");
  cache_ = std::make_unique<KvCache>(model.make_cache(parallel_, ctx_));
  for (int64_t i = 0; i < parallel_; ++i) {
    slots_.push_back(std::make_unique<Slot>());
    slots_.back()->index = i;
  }
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() { shutdown(); }

int64_t Engine::vocab_size() const { return model_.config().vocab_size; }

uint64_t Engine::kv_cache_bytes() const {
  uint64_t bytes = 0;
  for (const auto& layer : cache_->keys) bytes += 2 * layer.size() * sizeof(float);  // keys and values
  return bytes;
}

std::shared_ptr<JobChannel> Engine::submit(CompletionJob job) {
  auto channel = std::make_shared<JobChannel>();
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return nullptr;
    // A free slot takes the job at the next step; otherwise it waits in the queue.
    if (active_ + int64_t(queue_.size()) >= parallel_ + max_queue_) return nullptr;
    queue_.push_back({std::move(job), channel});
  }
  work_.notify_one();
  return channel;
}

Engine::Load Engine::load() const {
  std::lock_guard lock(mutex_);
  return {active_, int64_t(queue_.size())};
}

void Engine::shutdown() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  work_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Engine::admit() {
  for (auto& slot : slots_) {
    if (queue_.empty()) break;
    if (slot->pending) continue;
    Pending p = std::move(queue_.front());
    queue_.pop_front();
    if (p.channel->cancelled()) continue;
    Slot& s = *slot;
    s.order = admitted_++;
    s.prefilled = s.generated = 0;
    s.next = -1;
    s.decoding = false;
    s.sampler.emplace(p.job.sampling);
    s.prompt_logprobs.clear();
    s.pending = std::move(p);
    ++active_;
  }
  return !stopping_;
}

void Engine::release(Slot& slot) {
  slot.pending.reset();
  slot.decoding = false;
  std::lock_guard lock(mutex_);
  --active_;
}

// The slot is free before the client hears the end, so a client that sends
// its next request at once finds it free.
void Engine::finish(Slot& slot, const std::string& reason) {
  auto channel = slot.pending->channel;
  release(slot);
  JobEvent event;
  event.kind = JobEvent::Kind::Finished;
  event.finish_reason = reason;
  channel->push(std::move(event));
}

void Engine::fail(Slot& slot, const std::string& error, int64_t status) {
  auto channel = slot.pending->channel;
  release(slot);
  JobEvent event;
  event.kind = JobEvent::Kind::Failed;
  event.error = error;
  event.status = status;
  channel->push(std::move(event));
}

void Engine::advance(Slot& slot, const float* logits) {
  const CompletionJob& job = slot.pending->job;
  const std::span<const float> row(logits, size_t(vocab_size()));
  const int32_t token = slot.sampler->sample(row);
  if (std::find(job.stop_tokens.begin(), job.stop_tokens.end(), token) != job.stop_tokens.end()) return finish(slot, "stop");
  JobEvent event;
  event.token = token;
  if (job.top_logprobs >= 0) event.logprob = logprob_of(row, token, job.top_logprobs);
  slot.pending->channel->push(std::move(event));
  ++slot.generated;
  if (metrics_) metrics_->generated_tokens(1);
  // The token would be fed at position prompt + generated - 1.
  const int64_t position = int64_t(job.prompt.size()) + slot.generated - 1;
  if (slot.generated >= job.max_tokens || position >= ctx_) return finish(slot, "length");
  slot.next = token;
  slot.decoding = true;
}

void Engine::prefill(Slot& slot) {
  const CompletionJob& job = slot.pending->job;
  const int64_t n = int64_t(job.prompt.size()), start = slot.prefilled;
  const int64_t length = std::min(kPrefillChunkTokens, n - start);
  const SequenceSpan span{slot.index, start, length};
  const std::span<const int32_t> tokens(job.prompt.data() + start, size_t(length));
  const auto& hidden = model_.forward(tokens, std::span(&span, 1), *cache_);
  slot.prefilled += length;
  const bool last = slot.prefilled == n;
  const int64_t hd = model_.config().hidden_size, vocab = vocab_size();
  thread_local std::vector<float> logits;
  if (job.echo && job.top_logprobs >= 0) {
    // Row i predicts prompt token start + i + 1, where there is one.
    const int64_t rows = last ? length - 1 : length;
    logits.resize(size_t(std::max<int64_t>(rows, 1) * vocab));
    if (rows > 0) model_.logits(hidden.data(), rows, logits.data());
    for (int64_t i = 0; i < rows; ++i)
      slot.prompt_logprobs.push_back(logprob_of(std::span(&logits[size_t(i * vocab)], size_t(vocab)),
                                                job.prompt[size_t(start + i + 1)], job.top_logprobs));
  }
  if (!last) return;
  if (metrics_) metrics_->prompt_tokens(n);
  if (job.echo && job.top_logprobs >= 0) {
    JobEvent event;
    event.kind = JobEvent::Kind::PromptLogprobs;
    event.prompt = std::move(slot.prompt_logprobs);
    slot.pending->channel->push(std::move(event));
  }
  if (job.max_tokens == 0) return finish(slot, "length");
  // The sampled row alone, as `moec generate` computes it (one row: the
  // batch-invariant kernels).
  logits.resize(size_t(vocab));
  model_.logits(&hidden[size_t((length - 1) * hd)], 1, logits.data());
  advance(slot, logits.data());
}

void Engine::decode(std::vector<Slot*>& batch) {
  const int64_t vocab = vocab_size();
  thread_local std::vector<int32_t> tokens;
  thread_local std::vector<SequenceSpan> spans;
  thread_local std::vector<float> logits;
  tokens.clear();
  spans.clear();
  for (Slot* s : batch) {
    tokens.push_back(s->next);
    spans.push_back({s->index, int64_t(s->pending->job.prompt.size()) + s->generated - 1, 1});
  }
  const auto& hidden = model_.forward(tokens, std::span<const SequenceSpan>(spans), *cache_);
  logits.resize(size_t(int64_t(batch.size()) * vocab));
  model_.logits(hidden.data(), int64_t(batch.size()), logits.data());
  if (metrics_) metrics_->decode_step(int64_t(batch.size()));
  for (size_t i = 0; i < batch.size(); ++i) advance(*batch[i], &logits[i * size_t(vocab)]);
}

void Engine::loop() {
  std::vector<Slot*> reading, batch;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      work_.wait(lock, [&] { return stopping_ || !queue_.empty() || active_ > 0; });
      if (!admit()) break;
    }
    for (auto& slot : slots_)
      if (slot->pending && slot->pending->channel->cancelled()) release(*slot);
    try {
      reading.clear();
      for (auto& slot : slots_)
        if (slot->pending && !slot->decoding) reading.push_back(slot.get());
      std::sort(reading.begin(), reading.end(), [](Slot* a, Slot* b) { return a->order < b->order; });
      for (Slot* s : reading) prefill(*s);
      batch.clear();
      for (auto& slot : slots_) {
        if (!slot->pending || !slot->decoding) continue;
        batch.push_back(slot.get());
        if (int64_t(batch.size()) == kBatchInvariantTokens) {
          decode(batch);
          batch.clear();
        }
      }
      if (!batch.empty()) decode(batch);
    } catch (const std::exception& e) {  // e.g. out of memory: the jobs fail, the server goes on
      for (auto& slot : slots_)
        if (slot->pending) fail(*slot, std::string("the model failed: ") + e.what(), 500);
    }
  }
  std::lock_guard lock(mutex_);
  for (auto& slot : slots_)
    if (slot->pending) {
      JobEvent event;
      event.kind = JobEvent::Kind::Failed;
      event.error = "the server is shutting down";
      event.status = 503;
      slot->pending->channel->push(std::move(event));
      slot->pending.reset();
      --active_;
    }
  for (Pending& p : queue_) {
    JobEvent event;
    event.kind = JobEvent::Kind::Failed;
    event.error = "the server is shutting down";
    event.status = 503;
    p.channel->push(std::move(event));
  }
  queue_.clear();
}

}  // namespace moec
