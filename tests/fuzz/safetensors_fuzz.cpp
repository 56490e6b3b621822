// Fuzz target: a safetensors file (header JSON + data area). Whatever opens
// must be safe to read entirely: every entry's bytes lie inside the mapping
// and widen to f32 (checked by reading all of them).
#include <vector>

#include "io/safetensors.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moec::fuzz::MemFile file({data, size});
  moec::fuzz::accept_or_refuse([&] {
    moec::SafetensorsFile st(file.path());
    std::vector<float> values;
    for (const moec::SafetensorsEntry& e : st.entries()) {
      auto bytes = st.bytes(e);
      const size_t n = bytes.size() / moec::dtype_size(e.dtype);
      if (moec::shape_numel(e.shape) != n) __builtin_trap();  // the reader promised this
      if (!moec::dtype_is_float(e.dtype)) continue;
      values.resize(n);
      moec::convert_to_f32(e.dtype, bytes.data(), values.data(), n);
      if (st.find(e.name) != &e) __builtin_trap();
    }
  });
  return 0;
}
