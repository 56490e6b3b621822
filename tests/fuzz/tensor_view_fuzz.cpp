// Fuzz target: one stored tensor (tests/fuzz/tensor_record.h) viewed the way
// the runtime views weights (model/linear.h weight_view: dense, packed k-bit,
// ternary, sub1), then decoded whole and multiplied. A view must either be
// refused (moec::Error) or decode inside its arrays to finite weights, and the
// runtime's kernels (fused sub1, packed, dense; the CPU's best ISA, or the one
// MOEC_ISA names) must agree with the scalar reference.
#include <cmath>
#include <vector>

#include "io/checkpoint.h"
#include "model/linear.h"
#include "model/thread_pool.h"
#include "quant/tunstall.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/tensor_record.h"

namespace {

using namespace moec;

// The whole matrix in f32, decoded through the runtime's widening (sub1 a
// block of rows at a time, as the kernels do).
std::vector<float> decode_all(const WeightView& w) {
  std::vector<float> all, scratch;
  const int64_t step = w.kind == WeightKind::Sub1 ? kSub1BlockRows : w.rows;
  for (int64_t r0 = 0; r0 < w.rows; r0 += step) {
    const int64_t n = std::min(step, w.rows - r0);
    const float* rows = widen_rows(w, r0, n, scratch);
    all.insert(all.end(), rows, rows + n * w.cols);
  }
  return all;
}

void check_products(const WeightView& w, const std::vector<float>& weights) {
  static ThreadPool pool(1);
  for (int64_t tokens : {1, 5, 24}) {  // fused small-batch kernels, then the GEMM path
    std::vector<float> x(size_t(tokens * w.cols)), y(size_t(tokens * w.rows)), ref(y.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i * 7919 % 17) - 8) / 8.0f;
    LinearProblem p{x.data(), w.cols, tokens, w, y.data(), w.rows};
    linear(pool, p);
    p.y = ref.data();
    linear_reference(p);
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t n = 0; n < w.rows; ++n) {
        double scale = 0;  // Σ|x·w|: the rounding error of any summation order is below 1e-5 of it
        for (int64_t k = 0; k < w.cols; ++k)
          scale += std::abs(double(x[size_t(t * w.cols + k)]) * weights[size_t(n * w.cols + k)]);
        const double a = y[size_t(t * w.rows + n)], b = ref[size_t(t * w.rows + n)];
        if (!(std::abs(a - b) <= 1e-5 * scale + 1e-6)) __builtin_trap();
      }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fuzz::TensorRecord record = fuzz::read_record({data, size});
  TensorInfo info;
  info.name = "fuzz.tensor";
  info.encoding = record.encoding;
  info.format = record.format;
  info.shape = {record.rows, record.cols};
  std::vector<std::span<const std::byte>> parts;
  std::span<const std::byte> dense;
  for (const auto& p : record.parts) {
    if (p.name == "data") {
      dense = std::as_bytes(std::span(p.bytes));
      continue;
    }
    info.parts.push_back({p.name, DType::U8, {int64_t(p.bytes.size())}});
    parts.push_back(std::as_bytes(std::span(p.bytes)));
    info.nbytes += p.bytes.size();
  }
  if (!info.encoded()) {
    // Dense tensors reach views only after their reader checked the size.
    auto dtype = info.dense_dtype();
    if (!dtype || dense.size() != info.numel() * dtype_size(*dtype)) return 0;
  }
  const TensorData tensor = info.encoded() ? TensorData(info, parts) : TensorData(info, dense);
  fuzz::accept_or_refuse([&] {
    const WeightView w = weight_view(tensor);
    if (w.rows != record.rows || w.cols != record.cols) __builtin_trap();
    const std::vector<float> weights = decode_all(w);
    if (w.dense()) return;  // stored values, not decoded ones: any float is possible
    for (float v : weights)
      if (!std::isfinite(v)) __builtin_trap();  // a lying scale or level decoded into a non-finite weight
    check_products(w, weights);
  });
  // No view outlives this input; keeping a few dictionaries saves rebuilding
  // the seeds' one (milliseconds) for every input.
  if (shared_dictionary_count() > 4) release_shared_dictionaries();
  return 0;
}
