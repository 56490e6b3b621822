#include "model/tensor_check.h"

#include <cmath>
#include <vector>

#include "io/error.h"
#include "model/linear.h"

namespace moec {

void check_encoded_tensors(const CheckpointSource& source) {
  for (const TensorInfo& t : source.tensors()) {
    if (!t.encoded()) continue;
    try {
      (void)weight_view(source.read(t.key));
    } catch (const Error& e) {
      fail("{}: {}", source.path().string(), e.what());
    }
  }
}

namespace {

// Index of the first non-finite value of v[0, n), or n.
int64_t first_non_finite(const float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i])) return i;
  return n;
}

}  // namespace

uint64_t verify_all_tensors(const CheckpointSource& source) {
  uint64_t checked = 0;
  std::vector<float> scratch;
  for (const TensorInfo& t : source.tensors()) {
    const TensorData data = source.read(t.key);
    // A Hugging Face folder's tensors by their names in its files; a container's by its own names.
    const std::string& name = source.format() == "hf-safetensors" ? t.stored_name : t.name;
    const std::string where = fmt::format("{}: tensor '{}'", source.path().string(), name);
    if (t.shape.size() != 2) {  // norms, biases: plain dense vectors
      const std::vector<float> v = data.to_f32();
      const int64_t bad = first_non_finite(v.data(), int64_t(v.size()));
      if (bad < int64_t(v.size())) fail("{}: element {} is {}", where, bad, v[size_t(bad)]);
      checked += v.size();
      continue;
    }
    WeightView w;
    try {
      w = weight_view(data);
    } catch (const Error& e) {
      fail("{}: {}", source.path().string(), e.what());
    }
    const int64_t step = w.kind == WeightKind::Sub1 ? kSub1BlockRows : std::max<int64_t>(1, (int64_t{1} << 20) / w.cols);
    for (int64_t r0 = 0; r0 < w.rows; r0 += step) {
      const int64_t n = std::min(step, w.rows - r0);
      const float* rows = widen_rows(w, r0, n, scratch);
      const int64_t bad = first_non_finite(rows, n * w.cols);
      if (bad < n * w.cols)
        fail("{}: weight [{}, {}] decodes to {}", where, r0 + bad / w.cols, bad % w.cols, rows[bad]);
    }
    checked += uint64_t(w.rows * w.cols);
  }
  return checked;
}

}  // namespace moec
