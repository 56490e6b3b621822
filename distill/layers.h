// The student decoder's operations for training, each forward beside its
// backward (as karpathy/llm.c lays them out), in f32 on row-major buffers.
// The runtime's forward path (model/) is untouched: these keep what the
// backward pass needs (normalization scales, attention probabilities).
//
// Conventions: `n` rows of activations; a weight w[out, in] is applied as
// y = x · wᵀ (as torch.nn.Linear). Weight gradients accumulate (+=) so a
// step may sum several batches; activation gradients are written (=) unless
// the comment says they accumulate into a residual stream.
//
// Work is split into items of fixed size, independent of the thread count,
// and each output element is reduced by one item in one order: a result is
// bit-identical whatever the pool's size.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace moec {
class ThreadPool;
}

namespace moec::distill {

// y[n, out] = x[n, in] · w[out, in]ᵀ.
void linear_forward(ThreadPool& pool, const float* x, const float* w, int64_t n, int64_t in, int64_t out, float* y);
// dx[n, in] = dy · w (skipped when dx is null); dw[out, in] += dyᵀ · x.
void linear_backward(ThreadPool& pool, const float* dy, const float* x, const float* w, int64_t n, int64_t in,
                     int64_t out, float* dx, float* dw);

// y = w ⊙ x / sqrt(mean(x²) + eps) per row; rstd[r] = 1 / sqrt(mean(x_r²) + eps).
void rms_norm_forward(ThreadPool& pool, const float* x, const float* w, int64_t n, int64_t dim, float eps, float* y,
                      float* rstd);
// dx += (the residual stream's gradient gains the norm's), dw += Σ_rows.
void rms_norm_backward(ThreadPool& pool, const float* dy, const float* x, const float* w, const float* rstd, int64_t n,
                       int64_t dim, float* dx, float* dw);

// Rotary embedding (rotate-half, as Hugging Face Llama/Mistral) of `heads`
// vectors of head_dim per row, row r at position positions[r]: in place.
// Backward rotates by the opposite angle (the rotation's transpose).
class RotaryTable {
 public:
  RotaryTable(int64_t head_dim, double theta, int64_t positions);
  void rotate(ThreadPool& pool, float* x, int64_t n, int64_t heads, std::span<const int32_t> positions,
              bool inverse) const;

 private:
  int64_t half_;
  std::vector<float> cos_, sin_;
};

// Causal grouped-query attention of `windows` independent sequences of ctx
// rows each (rows window-major). q/out: [n, heads·d]; k/v: [n, kv_heads·d];
// probs: [windows, heads, ctx, ctx] (kept for backward). `sliding` > 0: a
// query sees only the last `sliding` keys (Mistral's sliding_window).
struct AttentionDims {
  int64_t windows = 0, ctx = 0, heads = 0, kv_heads = 0, head_dim = 0, sliding = 0;
};
void attention_forward(ThreadPool& pool, const AttentionDims& dims, const float* q, const float* k, const float* v,
                       float* probs, float* out);
// dq, dk, dv are written.
void attention_backward(ThreadPool& pool, const AttentionDims& dims, const float* dout, const float* q,
                        const float* k, const float* v, const float* probs, float* dq, float* dk, float* dv);

// a = silu(g) ⊙ u over `count` elements; backward writes dg, du.
void swiglu_forward(ThreadPool& pool, const float* g, const float* u, int64_t count, float* a);
void swiglu_backward(ThreadPool& pool, const float* da, const float* g, const float* u, int64_t count, float* dg,
                     float* du);

// The training loss of `rows` rows of logits [rows, vocab]:
//   (1 − α) · CE(label) + α · T² · KL(teacher_T ‖ student_T)
// (Hinton et al.'s scaling; α = 0 is plain next-token cross-entropy), for
// rows whose label ≥ 0; other rows count for nothing. teacher: [rows, vocab]
// logits or null (then α must be 0). logits are replaced by d(loss·scale)/d
// logits. Returns sums over the counted rows.
struct LossSums {
  double loss = 0, nll = 0, kl = 0;
  int64_t rows = 0;
};
struct LossWeights {
  float alpha = 0;        // weight of the teacher's soft targets
  float temperature = 1;  // T
};
LossSums loss_backward(ThreadPool& pool, float* logits, const float* teacher, std::span<const int32_t> labels,
                       int64_t vocab, const LossWeights& weights, float scale);

}  // namespace moec::distill
