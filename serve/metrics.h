// The server's counters and histograms, rendered in the Prometheus text
// exposition format (version 0.0.4) for GET /metrics:
//   moec_requests_total{endpoint,status}   requests answered, by HTTP status
//   moec_prompt_tokens_total               prompt tokens prefilled
//   moec_generated_tokens_total            tokens generated
//   moec_active_slots, moec_queue_depth    sequences running / waiting (gauges)
//   moec_batch_size                        sequences per decode step (histogram)
//   moec_time_to_first_token_seconds       request received -> first token sent
//   moec_inter_token_latency_seconds       between consecutive tokens of a stream
// Thread-safe: the engine thread and every HTTP thread record into it.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace moec {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // The `_bucket`, `_sum` and `_count` lines of metric `name`.
  std::string render(const std::string& name, const std::string& help) const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bound, not cumulative; last: above every bound
  double sum_ = 0;
  uint64_t count_ = 0;
};

class ServeMetrics {
 public:
  ServeMetrics();
  void request(const std::string& endpoint, int status);
  void prompt_tokens(int64_t n);
  void generated_tokens(int64_t n);
  void decode_step(int64_t batch);
  void time_to_first_token(double seconds);
  void inter_token_latency(double seconds);
  std::string render(int64_t active_slots, int64_t queue_depth) const;

  // For tests and `moec bench serve`.
  uint64_t requests(const std::string& endpoint, int status) const;
  uint64_t generated_tokens() const;
  // Decode steps so far and the sequences they ran (mean batch = second / first).
  std::pair<uint64_t, double> decode_steps() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0;
  Histogram batch_size_, ttft_, itl_;
};

}  // namespace moec
