#include "model/tensor_check.h"

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

}  // namespace moec
