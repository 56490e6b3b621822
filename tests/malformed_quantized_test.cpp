// Malformed quantized containers: structure errors are caught when the
// container opens, format errors when the runtime views the tensor; both
// name the file and the tensor.
#include <catch2/catch.hpp>

#include <hdf5.h>

#include "io/checkpoint.h"
#include "io/container.h"
#include "io/error.h"
#include "model/model.h"
#include "model/thread_pool.h"
#include "quant/gptq.h"
#include "quant/tensor_view.h"
#include "tests/test_paths.h"

using namespace moec;
namespace fs = std::filesystem;

namespace {

// The tiny model with expert (1, 2)'s w1 quantized to `spec`, then damaged.
void require_quantized_error(const std::string& spec, const std::function<void(hid_t, const char*)>& damage,
                             std::initializer_list<std::string> phrases) {
  test::TempDir tmp;
  test::write_tiny_checkpoint(tmp / "hf", test::tiny_config());
  auto hf = open_checkpoint(tmp / "hf");
  const TensorKey target{TensorRole::ExpertW1, 1, 2};
  {
    ContainerWriter writer(tmp / "q.h5", false, hf->config_json(), {});
    for (const TensorInfo& t : hf->tensors()) {
      TensorData data = hf->read(t.key);
      if (t.key != target) {
        writer.write_dense(t, t.stored_name, data.bytes());
        continue;
      }
      std::vector<float> w = data.to_f32();
      QuantizedMatrix m = quantize_rtn(w.data(), t.shape[0], t.shape[1], QuantFormat::parse(spec));
      TensorInfo info = t;
      auto parts = describe_quantized(m, info);
      writer.write_encoded(info, t.stored_name, parts);
    }
    writer.commit();
  }
  hid_t file = H5Fopen((tmp / "q.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(file >= 0);
  damage(file, "/tensors/layers/1/experts/2/w1");
  H5Fclose(file);
  try {
    auto source = open_checkpoint(tmp / "q.h5");
    ThreadPool pool(1);
    Model model(*source, pool);
  } catch (const Error& e) {
    std::string message = e.what();
    INFO(message);
    CHECK(message.find('\n') == std::string::npos);
    CHECK_THAT(message, Catch::Contains("q.h5"));
    for (const auto& p : phrases) CHECK_THAT(message, Catch::Contains(p));
    return;
  }
  FAIL("no moec::Error thrown");
}


// Replaces dataset `part` of the tensor group by a zero-filled one of dims.
void replace_part(hid_t file, const char* tensor, const char* part, hid_t type, std::vector<hsize_t> dims) {
  hid_t group = H5Gopen2(file, tensor, H5P_DEFAULT);
  H5Ldelete(group, part, H5P_DEFAULT);
  hid_t space = H5Screate_simple(int(dims.size()), dims.data(), nullptr);
  hid_t set = H5Dcreate2(group, part, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  size_t n = 1;
  for (auto d : dims) n *= d;
  std::vector<uint16_t> zeros(n);
  H5Dwrite(set, type == H5T_STD_U16LE ? H5T_NATIVE_UINT16 : H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT,
           zeros.data());
  H5Dclose(set);
  H5Sclose(space);
  H5Gclose(group);
}

}  // namespace

TEST_CASE("malformed quantized containers", "[malformed][quantized]") {
  const std::string w1 = "tensor 'layers.1.experts.2.w1'";
  // w1 is [24, 16]: q4g128 -> one group per row, 8 code bytes per row.
  require_quantized_error("q4g128", [](hid_t f, const char* t) { replace_part(f, t, "codes", H5T_STD_U8LE, {24, 7}); },
                          {w1, "'codes' holds 168 bytes but format q4g128 of a [24, 16] matrix needs 192"});
  require_quantized_error("q4g128", [](hid_t f, const char* t) { replace_part(f, t, "codes", H5T_STD_U8LE, {23, 8}); },
                          {w1, "'codes' must have 24 rows"});
  require_quantized_error("q4g128",
                          [](hid_t f, const char* t) {
                            hid_t g = H5Gopen2(f, t, H5P_DEFAULT);
                            H5Ldelete(g, "scales", H5P_DEFAULT);
                            H5Gclose(g);
                          },
                          {w1, "missing its 'scales' array"});
  require_quantized_error("q4g128", [](hid_t f, const char* t) { replace_part(f, t, "scales", H5T_STD_U8LE, {24, 2}); },
                          {w1, "'scales' must be U16"});
  require_quantized_error("ternary-sym", [](hid_t f, const char* t) { test::set_h5_string(f, t, "encoding", "sub2"); },
                          {w1, "unknown encoding 'sub2'"});
  require_quantized_error("q4g128", [](hid_t f, const char* t) { test::set_h5_string(f, t, "format", "q9g128"); },
                          {w1, "quantization format 'q9g128' is not known"});
  require_quantized_error("q4g128", [](hid_t f, const char* t) { test::set_h5_string(f, t, "format", "q2g128"); },
                          {w1, "'codes' holds 192 bytes but format q2g128"});
  require_quantized_error("q4g128", [](hid_t f, const char* t) { test::set_h5_string(f, t, "format", "ternary-sym"); },
                          {w1, "format 'ternary-sym' does not belong to encoding 'affine'"});
  require_quantized_error("ternary-qmoe",
                          [](hid_t f, const char* t) {
                            hid_t g = H5Gopen2(f, t, H5P_DEFAULT);
                            H5Adelete(g, "format");
                            H5Gclose(g);
                          },
                          {w1, "missing the format attribute"});
}
