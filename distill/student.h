// A dense Mistral-family student's weights for training: every tensor an f32
// master copy with its gradient, under its Hugging Face name. Built from a
// dense checkpoint (to continue training it, or to check gradients), or from
// an MoE teacher's non-expert tensors plus an MLP of chosen width.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/model_config.h"
#include "io/tensor_names.h"

namespace moec {
class CheckpointSource;
}

namespace moec::distill {

struct Parameter {
  TensorKey key;
  std::string name;  // Hugging Face name
  std::vector<int64_t> shape;
  std::vector<float> value, grad;  // grad: allocated when the parameter first trains
  int64_t numel() const { return int64_t(value.size()); }
  // Allocates a zero gradient if there is none (a stage that only fits some
  // tensors, or only evaluates, holds no gradient memory for the rest).
  void ensure_grad() {
    if (grad.size() != value.size()) grad.assign(value.size(), 0.0f);
  }
  // Norm weights (1-D) get no weight decay.
  bool is_vector() const { return shape.size() == 1; }
};

class Student {
 public:
  // All tensors of a dense (mistral / llama) checkpoint, widened to f32.
  static Student from_dense(const CheckpointSource& source);
  // The teacher's embeddings, attention, norms and lm_head, and zeroed MLPs
  // of width `width` (filled by the caller's initialization).
  static Student from_teacher(const CheckpointSource& teacher, int64_t width);

  const ModelConfig& config() const { return config_; }
  // config.json of the student (a MistralForCausalLM).
  const nlohmann::json& config_json() const { return config_json_; }
  std::vector<Parameter>& parameters() { return params_; }
  const std::vector<Parameter>& parameters() const { return params_; }
  Parameter& at(const TensorKey& key) { return params_[index_of(key)]; }
  const Parameter& at(const TensorKey& key) const { return params_[index_of(key)]; }
  // The lm_head matrix: its own, or the embedding when tied.
  Parameter& lm_head() { return at({config_.tie_word_embeddings ? TensorRole::Embed : TensorRole::LmHead}); }
  int64_t parameter_count() const;
  void zero_grad();

 private:
  Student(nlohmann::json config_json, const std::string& origin);
  size_t index_of(const TensorKey& key) const;
  nlohmann::json config_json_;
  ModelConfig config_;
  std::vector<Parameter> params_;  // expected_tensors() order
};

}  // namespace moec::distill
