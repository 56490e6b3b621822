#include "distill/student.h"

#include <algorithm>

#include "io/checkpoint.h"
#include "io/error.h"

namespace moec::distill {

Student::Student(nlohmann::json config_json, const std::string& origin)
    : config_json_(std::move(config_json)), config_(parse_model_config(config_json_, origin)) {
  const ArchitectureNames& arch = *find_architecture(config_.model_type);
  for (const TensorKey& key : expected_tensors(config_)) {
    Parameter p{key, hf_name(arch, key), expected_shape(config_, key), {}, {}};
    int64_t numel = 1;
    for (int64_t d : p.shape) numel *= d;
    p.value.assign(size_t(numel), 0.0f);
    params_.push_back(std::move(p));
  }
}

Student Student::from_dense(const CheckpointSource& source) {
  if (source.config().moe())
    fail("{}: a {} model has experts; expected a dense mistral or llama model", source.path().string(),
         source.config().model_type);
  Student s(source.config_json(), source.path().string());
  for (Parameter& p : s.params_) {
    const TensorInfo& info = source.info(p.key);
    if (!info.dense_dtype()) fail("{}: tensor '{}' is quantized; a student trains from dense weights", source.path().string(), info.stored_name);
    p.value = source.read(p.key).to_f32();
  }
  return s;
}

Student Student::from_teacher(const CheckpointSource& teacher, int64_t width) {
  const ModelConfig& c = teacher.config();
  if (!c.moe())
    fail("{}: a dense {} model is not an MoE teacher (nothing to distill)", teacher.path().string(), c.model_type);
  if (c.qk_norm != QkNorm::None || c.attention_bias)
    fail("{}: a {} teacher has q/k norms or q/k/v biases, which a Mistral student cannot hold; distill supports "
         "mixtral teachers", teacher.path().string(), c.model_type);
  if (c.shared_expert_size > 0 || !c.dense_layers.empty())
    fail("{}: a {} teacher with shared experts or dense layers is not supported; distill supports mixtral teachers",
         teacher.path().string(), c.model_type);
  if (width <= 0) fail("--width {} must be positive", width);
  nlohmann::json config = teacher.config_json();
  for (const char* key : {"num_local_experts", "num_experts_per_tok", "router_aux_loss_coef", "output_router_logits",
                          "router_jitter_noise", "num_experts", "moe_intermediate_size", "norm_topk_prob"})
    config.erase(key);
  config["model_type"] = "mistral";
  config["architectures"] = nlohmann::json::array({"MistralForCausalLM"});
  config["intermediate_size"] = width;
  config["head_dim"] = c.head_dim;
  config["num_key_value_heads"] = c.num_kv_heads;  // the teacher's, resolved: Mistral's defaults differ
  // The teacher's window, spelled out: a Mistral config without the key
  // means MistralConfig's 4096, Mixtral's none.
  config["sliding_window"] = c.sliding_window ? nlohmann::json(*c.sliding_window) : nlohmann::json(nullptr);
  Student s(std::move(config), "student config");
  for (Parameter& p : s.params_) {
    const TensorRole r = p.key.role;
    if (r == TensorRole::MlpGate || r == TensorRole::MlpUp || r == TensorRole::MlpDown) continue;
    // Everything but the MLP has the same key (and shape) in the teacher.
    const TensorInfo& info = teacher.info(p.key);
    if (!info.dense_dtype())
      fail("{}: tensor '{}' is quantized; distill from a dense teacher", teacher.path().string(), info.stored_name);
    p.value = teacher.read(p.key).to_f32();
  }
  return s;
}

size_t Student::index_of(const TensorKey& key) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].key == key) return i;
  fail("student has no tensor '{}'", logical_name(key));
}

int64_t Student::parameter_count() const {
  int64_t n = 0;
  for (const Parameter& p : params_) n += p.numel();
  return n;
}

void Student::zero_grad() {
  for (Parameter& p : params_) p.grad.assign(p.value.size(), 0.0f);
}

}  // namespace moec::distill
