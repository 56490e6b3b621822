#include "serve/metrics.h"

#include <fmt/format.h>

namespace moec {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

std::string Histogram::render(const std::string& name, const std::string& help) const {
  std::string out = fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, count_, name, sum_, name, count_);
  return out;
}

namespace {
std::vector<double> latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}
}  // namespace

ServeMetrics::ServeMetrics()
    : batch_size_({1, 2, 4, 8, 12, 16, 24, 32, 64}), ttft_(latency_buckets()), itl_(latency_buckets()) {}

void ServeMetrics::request(const std::string& endpoint, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{endpoint, status}];
}
void ServeMetrics::prompt_tokens(int64_t n) {
  std::lock_guard lock(mutex_);
  prompt_tokens_ += uint64_t(n);
}
void ServeMetrics::generated_tokens(int64_t n) {
  std::lock_guard lock(mutex_);
  generated_tokens_ += uint64_t(n);
}
void ServeMetrics::decode_step(int64_t batch) {
  std::lock_guard lock(mutex_);
  batch_size_.observe(double(batch));
}
void ServeMetrics::time_to_first_token(double seconds) {
  std::lock_guard lock(mutex_);
  ttft_.observe(seconds);
}
void ServeMetrics::inter_token_latency(double seconds) {
  std::lock_guard lock(mutex_);
  itl_.observe(seconds);
}

uint64_t ServeMetrics::requests(const std::string& endpoint, int status) const {
  std::lock_guard lock(mutex_);
  auto it = requests_.find({endpoint, status});
  return it == requests_.end() ? 0 : it->second;
}

uint64_t ServeMetrics::generated_tokens() const {
  std::lock_guard lock(mutex_);
  return generated_tokens_;
}

std::pair<uint64_t, double> ServeMetrics::decode_steps() const {
  std::lock_guard lock(mutex_);
  return {batch_size_.count(), batch_size_.sum()};
}

std::string ServeMetrics::render(int64_t active_slots, int64_t queue_depth) const {
  std::lock_guard lock(mutex_);
  std::string out =
      "# HELP moec_requests_total Requests answered, by endpoint and HTTP status.\n"
      "# TYPE moec_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    out += fmt::format("moec_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
  out += fmt::format(
      "# HELP moec_prompt_tokens_total Prompt tokens prefilled.\n# TYPE moec_prompt_tokens_total counter\n"
      "moec_prompt_tokens_total {}\n"
      "# HELP moec_generated_tokens_total Tokens generated.\n# TYPE moec_generated_tokens_total counter\n"
      "moec_generated_tokens_total {}\n"
      "# HELP moec_active_slots Sequences holding a KV cache slot.\n# TYPE moec_active_slots gauge\n"
      "moec_active_slots {}\n"
      "# HELP moec_queue_depth Requests waiting for a slot.\n# TYPE moec_queue_depth gauge\n"
      "moec_queue_depth {}\n",
      prompt_tokens_, generated_tokens_, active_slots, queue_depth);
  out += batch_size_.render("moec_batch_size", "Sequences per decode step.");
  out += ttft_.render("moec_time_to_first_token_seconds", "From request received to its first token sent.");
  out += itl_.render("moec_inter_token_latency_seconds", "Between consecutive tokens sent to a client.");
  return out;
}

}  // namespace moec
