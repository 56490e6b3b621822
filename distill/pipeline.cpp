#include "distill/pipeline.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>

#include <fmt/format.h>

#include "distill/adamw.h"
#include "distill/student_pass.h"
#include "io/checkpoint.h"
#include "io/checksum.h"
#include "io/container.h"
#include "io/dtype.h"
#include "io/error.h"
#include "io/hf_writer.h"
#include "io/process_stats.h"
#include "io/text_file.h"
#include "model/calibration.h"
#include "model/model.h"
#include "model/ops.h"
#include "model/thread_pool.h"
#include "model/tokenizer.h"

namespace moec::distill {
namespace {

std::vector<std::byte> encode(const std::vector<float>& v, DType dtype) {
  std::vector<std::byte> out(v.size() * dtype_size(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(&out[i * 4], &v[i], 4);
    } else {
      const uint16_t b = dtype == DType::BF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
      std::memcpy(&out[i * 2], &b, 2);
    }
  }
  return out;
}

// The student's tensors into a HF folder or a container, opened before any
// work so that an existing output fails at once.
class StudentWriter {
 public:
  StudentWriter(const CheckpointSource& teacher, const std::filesystem::path& out, const Student& student,
                const DistillOptions& o, DType dtype)
      : dtype_(dtype) {
    const ArchitectureNames& arch = *find_architecture(student.config().model_type);
    if (out.extension() == ".h5") {
      Provenance p{o.command_line, std::filesystem::absolute(teacher.path()).string(), std::string(teacher.format()),
                   describe_files(teacher.files()), nullptr};
      p.quantization = {{"distill", {{"width", o.width}, {"init", mlp_init_name(o.init)}}}};
      container_ = std::make_unique<ContainerWriter>(out, o.overwrite, student.config_json(), p);
      container_->write_tokenizers(teacher.tokenizer_files());
    } else {
      std::vector<TensorSpec> specs;
      for (const Parameter& param : student.parameters()) specs.push_back({hf_name(arch, param.key), dtype, param.shape});
      HfWriteOptions options;
      options.overwrite = o.overwrite;
      hf_ = std::make_unique<HfStreamWriter>(out, options, student.config_json(), teacher.tokenizer_files(), specs);
    }
  }

  uint64_t write(const Student& student) {
    uint64_t bytes = 0;
    for (const Parameter& p : student.parameters()) {
      const std::vector<std::byte> data = encode(p.value, dtype_);
      bytes += data.size();
      if (hf_) {
        hf_->write(p.name, data);
      } else {
        TensorInfo info{p.key, logical_name(p.key), p.name, std::string(dtype_encoding(dtype_)), p.shape, data.size(), {}, {}};
        container_->write_dense(info, p.name, data);
      }
    }
    if (hf_) hf_->commit();
    if (container_) container_->commit();
    return bytes;
  }

 private:
  DType dtype_;
  std::unique_ptr<HfStreamWriter> hf_;
  std::unique_ptr<ContainerWriter> container_;
};

// The teacher's logits for whole windows [windows·ctx, vocab].
void teacher_logits(Model& teacher, std::span<const int32_t> ids, int64_t ctx, KvCache& cache, std::vector<float>& out) {
  const int64_t windows = int64_t(ids.size()) / ctx;
  std::vector<SequenceSpan> spans;
  for (int64_t w = 0; w < windows; ++w) spans.push_back({w, 0, ctx});
  const std::vector<float>& hidden = teacher.forward(ids, spans, cache);
  out.resize(size_t(windows * ctx * teacher.config().vocab_size));
  teacher.logits(hidden.data(), windows * ctx, out.data());
}

class Distiller {
 public:
  Distiller(const CheckpointSource& teacher, const DistillOptions& o, ThreadPool& pool)
      : source_(teacher), o_(o), pool_(pool), config_(teacher.config()), model_(teacher, pool) {}

  DistillReport run(const std::filesystem::path& out);

 private:
  void log(const std::string& line) {
    if (o_.progress) o_.progress(line);
  }
  std::span<const int32_t> window(const std::vector<int32_t>& ids, int64_t w) const {
    return std::span<const int32_t>(ids).subspan(size_t(w * o_.ctx), size_t(o_.ctx));
  }
  double teacher_perplexity();
  double student_perplexity(StudentPass& pass);
  // Stage 1; returns each layer's MLP as initialized (gate, up, down per
  // layer), for measuring what the initialization alone gives.
  std::vector<std::vector<float>> layerwise(Student& student, DistillReport& report);
  void report_layerwise(Student& student, StudentPass& pass, std::vector<std::vector<float>> initial,
                        double seconds, DistillReport& report);
  void end_to_end(Student& student, StudentPass& pass, DistillReport& report);

  const CheckpointSource& source_;
  const DistillOptions& o_;
  ThreadPool& pool_;
  const ModelConfig& config_;
  Model model_;
  Stopwatch clock_;
  std::vector<int32_t> train_, validation_;
  int64_t train_windows_ = 0, validation_windows_ = 0;
};

double Distiller::teacher_perplexity() {
  KvCache cache = model_.make_cache(o_.batch_windows, o_.ctx);
  std::vector<float> logits;
  double nll = 0;
  int64_t rows = 0;
  const int64_t vocab = config_.vocab_size;
  for (int64_t w0 = 0; w0 < validation_windows_; w0 += o_.batch_windows) {
    const int64_t windows = std::min(o_.batch_windows, validation_windows_ - w0);
    std::span<const int32_t> ids(&validation_[size_t(w0 * o_.ctx)], size_t(windows * o_.ctx));
    teacher_logits(model_, ids, o_.ctx, cache, logits);
    for (int64_t r = 0; r < windows * o_.ctx; ++r) {
      if ((r + 1) % o_.ctx == 0) continue;
      const float* z = &logits[size_t(r * vocab)];
      nll += double(log_sum_exp(z, vocab)) - z[ids[size_t(r + 1)]];
      ++rows;
    }
  }
  return std::exp(nll / double(rows));
}

double Distiller::student_perplexity(StudentPass& pass) {
  double nll = 0;
  int64_t rows = 0;
  for (int64_t w0 = 0; w0 < validation_windows_; w0 += o_.batch_windows) {
    const int64_t windows = std::min(o_.batch_windows, validation_windows_ - w0);
    std::span<const int32_t> ids(&validation_[size_t(w0 * o_.ctx)], size_t(windows * o_.ctx));
    const LossSums s = pass.run(ids, nullptr, {}, false);
    nll += s.nll;
    rows += s.rows;
  }
  return std::exp(nll / double(rows));
}

std::vector<std::vector<float>> Distiller::layerwise(Student& student, DistillReport& report) {
  Stopwatch clock;
  const int64_t windows = std::min(o_.layer_windows, train_windows_), n = windows * o_.ctx, h = config_.hidden_size;
  const int64_t chunk = o_.batch_windows * o_.ctx;
  std::span<const int32_t> ids(train_.data(), size_t(n));
  std::vector<float> x, normed, target, out;
  model_.embed(ids, x);
  MoeBlock moe;
  Routing routing;
  std::vector<float> router_logits;
  std::vector<std::vector<float>> initial;  // each layer's MLP as initialized, for the init perplexity
  for (int l = 0; l < config_.num_layers; ++l) {
    for (int64_t w0 = 0; w0 < windows; w0 += o_.batch_windows) {
      KvCache cache(1, std::min(o_.batch_windows, windows - w0), o_.ctx, config_.num_kv_heads * config_.head_dim);
      model_.attention_layer(l, &x[size_t(w0 * o_.ctx * h)], o_.ctx, cache, 0);
    }
    normed.resize(x.size());
    rms_norm(x.data(), n, h, model_.moe_norm(l).data(), float(config_.rms_norm_eps), normed.data());
    // The MoE block's output and routing, a batch of windows at a time (its
    // scratch grows with the tokens of one call).
    target.assign(x.size(), 0.0f);
    routing.chosen.clear();
    routing.weight.clear();
    Routing part;
    for (int64_t t0 = 0; t0 < n; t0 += chunk) {
      const int64_t m = std::min(chunk, n - t0);
      moe.forward(pool_, model_.moe_weights(l), config_.top_k, &normed[size_t(t0 * h)], m, &target[size_t(t0 * h)], nullptr);
      route_tokens(pool_, model_.moe_weights(l).router, config_.top_k, &normed[size_t(t0 * h)], m, part,
                   router_logits, config_.norm_topk_prob);
      routing.top_k = part.top_k;
      routing.chosen.insert(routing.chosen.end(), part.chosen.begin(), part.chosen.end());
      routing.weight.insert(routing.weight.end(), part.weight.begin(), part.weight.end());
    }
    DenseMlp mlp{student.at({TensorRole::MlpGate, l}), student.at({TensorRole::MlpUp, l}),
                 student.at({TensorRole::MlpDown, l})};
    init_mlp(pool_, source_, l, o_.init, normed.data(), n, routing, o_.seed, mlp);
    for (Parameter* p : {&mlp.gate, &mlp.up, &mlp.down}) initial.push_back(p->value);
    MlpFitOptions fit;
    fit.epochs = o_.layer_epochs;
    fit.lr = o_.layer_lr;
    fit.seed = o_.seed + uint64_t(l);
    report.layers.push_back(fit_mlp(pool_, normed.data(), target.data(), n, fit, mlp));
    // The next layer sees the student's stream.
    for (int64_t t0 = 0; t0 < n; t0 += chunk) {
      const int64_t m = std::min(chunk, n - t0);
      out.resize(size_t(m * h));
      mlp_forward(pool_, &normed[size_t(t0 * h)], m, mlp, out.data());
      for (int64_t i = 0; i < m * h; ++i) x[size_t(t0 * h + i)] += out[size_t(i)];
    }
    log(fmt::format("distill: layer {}/{} fitted on {} tokens: relative error {:.4f} -> {:.4f} ({:.1f} s)", l + 1,
                    config_.num_layers, n, report.layers.back().error_init, report.layers.back().error_fitted,
                    clock.seconds()));
  }
  return initial;
}

void Distiller::report_layerwise(Student& student, StudentPass& pass, std::vector<std::vector<float>> initial,
                                 double seconds, DistillReport& report) {
  // The perplexity the initialization alone gives, then the fitted one.
  std::vector<std::vector<float>> fitted;
  for (int l = 0, i = 0; l < config_.num_layers; ++l)
    for (TensorRole role : {TensorRole::MlpGate, TensorRole::MlpUp, TensorRole::MlpDown}) {
      fitted.push_back(std::move(student.at({role, l}).value));
      student.at({role, l}).value = std::move(initial[size_t(i++)]);
    }
  report.stages.push_back({"init", student_perplexity(pass), 0.0, 0});
  for (int l = 0, i = 0; l < config_.num_layers; ++l)
    for (TensorRole role : {TensorRole::MlpGate, TensorRole::MlpUp, TensorRole::MlpDown})
      student.at({role, l}).value = std::move(fitted[size_t(i++)]);
  const int64_t tokens = std::min(o_.layer_windows, train_windows_) * o_.ctx;
  report.stages.push_back({"layerwise", student_perplexity(pass), seconds, tokens});
  log(fmt::format("distill: init ({}) validation ppl {:.2f}; after layer-wise fitting {:.2f}", mlp_init_name(o_.init),
                  report.stages[0].validation_ppl, report.stages[1].validation_ppl));
}

void Distiller::end_to_end(Student& student, StudentPass& pass, DistillReport& report) {
  const int64_t batches = (train_windows_ + o_.batch_windows - 1) / o_.batch_windows;
  const int64_t steps = o_.steps < 0 ? batches : o_.steps;
  if (steps == 0) return;
  Stopwatch clock;
  AdamWOptions ao;
  ao.lr = o_.lr;
  ao.warmup_steps = std::max<int64_t>(1, steps / 20);
  ao.total_steps = steps;
  std::vector<Parameter*> params;
  for (Parameter& p : student.parameters()) params.push_back(&p);
  AdamW adam(params, ao);
  report.optimizer_bytes = adam.state_bytes();
  KvCache cache = model_.make_cache(o_.batch_windows, o_.ctx);
  std::vector<float> logits;
  std::vector<int32_t> batch;
  std::vector<int64_t> order(static_cast<size_t>(train_windows_));
  std::mt19937_64 rng(o_.seed ^ 0x5EEDull);
  int64_t tokens = 0, next_point = 1;
  double train_seconds = 0;
  const LossWeights weights{o_.alpha, o_.temperature};
  for (int64_t step = 0; step < steps; ++step) {
    const int64_t b = step % batches;
    if (b == 0) {  // a new pass over the windows, in a fresh order
      for (int64_t i = 0; i < train_windows_; ++i) order[size_t(i)] = i;
      for (int64_t i = train_windows_ - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(rng() % uint64_t(i + 1))]);
    }
    Stopwatch step_clock;
    batch.clear();
    for (int64_t i = b * o_.batch_windows; i < std::min(train_windows_, (b + 1) * o_.batch_windows); ++i) {
      const auto w = window(train_, order[size_t(i)]);
      batch.insert(batch.end(), w.begin(), w.end());
    }
    if (o_.alpha > 0) teacher_logits(model_, batch, o_.ctx, cache, logits);
    const LossSums s = pass.run(batch, o_.alpha > 0 ? logits.data() : nullptr, weights, true);
    const double norm = adam.step();
    tokens += int64_t(batch.size());
    train_seconds += step_clock.seconds();
    if ((step + 1) % 10 == 0 || step + 1 == steps)
      log(fmt::format("distill: step {}/{} loss {:.4f} (ce {:.4f}, kl {:.4f}) grad norm {:.3f} lr {:.2e}, {:.0f} tokens/s",
                      step + 1, steps, s.loss / double(s.rows), s.nll / double(s.rows), s.kl / double(s.rows), norm,
                      adam.learning_rate(step), double(tokens) / train_seconds));
    if (o_.curve_points > 0 && (step + 1) * o_.curve_points >= next_point * steps) {
      while (next_point * steps <= (step + 1) * o_.curve_points) ++next_point;
      report.curve.push_back({tokens, student_perplexity(pass), clock.seconds()});
      log(fmt::format("distill: {} tokens: validation ppl {:.2f}", tokens, report.curve.back().ppl));
    }
  }
  report.steps = steps;
  report.tokens_per_second = double(tokens) / train_seconds;
  const double ppl = report.curve.empty() || report.curve.back().tokens != tokens ? student_perplexity(pass)
                                                                                   : report.curve.back().ppl;
  report.stages.push_back({"end-to-end", ppl, clock.seconds(), tokens});
}

DistillReport Distiller::run(const std::filesystem::path& out) {
  if (o_.width <= 0) fail("--width {} must be positive", o_.width);
  if (o_.ctx < 2 || o_.ctx > config_.max_position_embeddings)
    fail("--ctx {} must be between 2 and the model's max_position_embeddings {}", o_.ctx, config_.max_position_embeddings);
  if (o_.batch_windows < 1) fail("--batch-windows {} must be positive", o_.batch_windows);
  if (o_.validation_windows < 1) fail("--validation-windows {} must be positive", o_.validation_windows);
  if (o_.layer_windows < 1) fail("--layer-windows {} must be positive", o_.layer_windows);
  if (!(o_.alpha >= 0 && o_.alpha <= 1)) fail("--alpha {} must be between 0 and 1", o_.alpha);
  if (!(o_.temperature > 0)) fail("--temperature {} must be positive", o_.temperature);
  Student student = Student::from_teacher(source_, o_.width);  // refuses dense and q/k-norm teachers
  const DType dtype = *source_.info({TensorRole::Embed}).dense_dtype();
  StudentWriter writer(source_, out, student, o_, dtype);

  Tokenizer tokenizer = Tokenizer::from_checkpoint(source_);
  const std::vector<int32_t> text = tokenizer.encode(read_text_file(o_.calib));
  if (int64_t(text.size()) < (o_.validation_windows + 1) * o_.ctx)
    fail("{}: {} tokens; need at least {} (the {} validation windows and one training window of {})",
         o_.calib.string(), text.size(), (o_.validation_windows + 1) * o_.ctx, o_.validation_windows, o_.ctx);
  std::vector<int32_t> all = calibration_windows(text, o_.calib_windows + o_.validation_windows, o_.ctx, o_.seed);
  const int64_t windows = int64_t(all.size()) / o_.ctx;
  if (windows < o_.validation_windows + 1)
    fail("{}: {} windows of {} tokens; need more than the {} validation windows", o_.calib.string(), windows, o_.ctx,
         o_.validation_windows);
  validation_windows_ = o_.validation_windows;
  train_windows_ = windows - validation_windows_;
  validation_.assign(all.begin() + train_windows_ * o_.ctx, all.end());
  all.resize(size_t(train_windows_ * o_.ctx));
  train_ = std::move(all);

  DistillReport report;
  report.init = std::string(mlp_init_name(o_.init));
  report.width = o_.width;
  for (const TensorInfo& t : source_.tensors()) report.teacher_params += t.numel();
  report.student_params = uint64_t(student.parameter_count());
  report.weight_bytes = report.student_params * 2 * sizeof(float);
  report.teacher_validation_ppl = teacher_perplexity();
  log(fmt::format("distill: {} training windows of {} tokens, {} validation windows; teacher validation ppl {:.2f}",
                  train_windows_, o_.ctx, validation_windows_, report.teacher_validation_ppl));
  Stopwatch stage1;
  std::vector<std::vector<float>> initial = layerwise(student, report);  // its activations are freed here
  const double stage1_seconds = stage1.seconds();
  StudentPass pass(student, pool_, o_.batch_windows, o_.ctx);
  report.activation_bytes = pass.activation_bytes();
  report_layerwise(student, pass, std::move(initial), stage1_seconds, report);
  end_to_end(student, pass, report);
  for (const Parameter& p : student.parameters())
    for (float v : p.value)
      if (!std::isfinite(v)) fail("distill: tensor '{}' of the student is not finite after training (lower --lr)", p.name);
  report.bytes_written = writer.write(student);
  report.seconds = clock_.seconds();
  report.peak_rss = peak_rss_bytes();
  return report;
}

}  // namespace

DistillReport distill_model(const CheckpointSource& teacher, const std::filesystem::path& out,
                            const DistillOptions& options, ThreadPool& pool) {
  Distiller distiller(teacher, options, pool);
  return distiller.run(out);
}

nlohmann::ordered_json to_json(const DistillReport& r) {
  nlohmann::ordered_json j;
  j["init"] = r.init;
  j["width"] = r.width;
  j["teacher_params"] = r.teacher_params;
  j["student_params"] = r.student_params;
  j["teacher_validation_ppl"] = r.teacher_validation_ppl;
  j["stages"] = nlohmann::ordered_json::array();
  for (const StageReport& s : r.stages)
    j["stages"].push_back({{"name", s.name}, {"validation_ppl", s.validation_ppl}, {"seconds", s.seconds}, {"tokens", s.tokens}});
  j["layers"] = nlohmann::ordered_json::array();
  for (size_t l = 0; l < r.layers.size(); ++l)
    j["layers"].push_back({{"layer", l}, {"relative_error_init", r.layers[l].error_init},
                           {"relative_error_fitted", r.layers[l].error_fitted}});
  j["curve"] = nlohmann::ordered_json::array();
  for (const CurvePoint& p : r.curve)
    j["curve"].push_back({{"tokens", p.tokens}, {"validation_ppl", p.ppl}, {"seconds", p.seconds}});
  j["steps"] = r.steps;
  j["tokens_per_second"] = r.tokens_per_second;
  j["memory"] = {{"student_weights_and_grads_bytes", r.weight_bytes},
                 {"optimizer_bytes", r.optimizer_bytes},
                 {"activation_bytes", r.activation_bytes},
                 {"peak_rss_bytes", r.peak_rss}};
  j["bytes_written"] = r.bytes_written;
  j["seconds"] = r.seconds;
  return j;
}

std::string to_text(const DistillReport& r) {
  std::string s = fmt::format("student: dense MLP width {} ({} init), {:.2f}M parameters (teacher {:.2f}M)\n", r.width,
                              r.init, double(r.student_params) / 1e6, double(r.teacher_params) / 1e6);
  s += fmt::format("{:<12} {:>14} {:>10} {:>10}\n", "stage", "validation ppl", "tokens", "seconds");
  s += fmt::format("{:<12} {:>14.2f} {:>10} {:>10}\n", "teacher", r.teacher_validation_ppl, "-", "-");
  for (const StageReport& st : r.stages)
    s += fmt::format("{:<12} {:>14.2f} {:>10} {:>10.1f}\n", st.name, st.validation_ppl, st.tokens, st.seconds);
  if (!r.curve.empty()) {
    s += "end-to-end curve (tokens: validation ppl):";
    for (const CurvePoint& p : r.curve) s += fmt::format(" {}: {:.2f}", p.tokens, p.ppl);
    s += "\n";
  }
  if (r.steps > 0) s += fmt::format("end-to-end: {} steps, {:.0f} tokens/s\n", r.steps, r.tokens_per_second);
  s += fmt::format("memory: student weights+grads {:.1f} MiB, Adam state {:.1f} MiB, activations {:.1f} MiB; peak RSS {:.1f} MiB\n",
                   double(r.weight_bytes) / 1048576.0, double(r.optimizer_bytes) / 1048576.0,
                   double(r.activation_bytes) / 1048576.0, double(r.peak_rss) / 1048576.0);
  s += fmt::format("time {:.1f} s, wrote {:.1f} MiB\n", r.seconds, double(r.bytes_written) / 1048576.0);
  return s;
}

}  // namespace moec::distill
