// Malformed quantized containers: structure errors are caught when the
// container opens, format errors when the runtime views the tensor; both
// name the file and the tensor.
#include <catch2/catch.hpp>

#include <hdf5.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "io/checkpoint.h"
#include "io/container.h"
#include "io/error.h"
#include "model/model.h"
#include "model/thread_pool.h"
#include "quant/gptq.h"
#include "quant/sub1.h"
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
      QuantFormat format = QuantFormat::parse(spec);
      format.level_scale = 0.1f;
      QuantizedMatrix m = quantize_rtn(w.data(), t.shape[0], t.shape[1], format);
      TensorInfo info = t;
      if (spec == "sub1") {
        const Sub1Matrix coded = encode_sub1(m, shared_dictionary(count_trits(trits_of(m))));
        writer.write_encoded(info, t.stored_name, describe_sub1(coded, info));
      } else {
        writer.write_encoded(info, t.stored_name, describe_quantized(m, info));
      }
    }
    writer.commit();
  }
  hid_t file = H5Fopen((tmp / "q.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(file >= 0);
  damage(file, "/tensors/layers/1/experts/2/w1");
  H5Fclose(file);
  // moec inspect refuses it too, in one line naming the file and the tensor.
  const auto inspect = test::run_moec("inspect '" + (tmp / "q.h5").string() + "'");
  INFO(inspect.err);
  CHECK(inspect.exit_code == 1);
  CHECK(std::count(inspect.err.begin(), inspect.err.end(), '\n') == 1);
  CHECK_THAT(inspect.err, Catch::Contains("q.h5"));
  for (const auto& p : phrases) CHECK_THAT(inspect.err, Catch::Contains(p));
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


// Replaces dataset `part` of the tensor group by one of dims whose every
// element has the bytes of `fill` (little-endian, truncated to the type).
void replace_part(hid_t file, const char* tensor, const char* part, hid_t type, std::vector<hsize_t> dims,
                  uint64_t fill);

// ... or zero-filled.
void replace_part(hid_t file, const char* tensor, const char* part, hid_t type, std::vector<hsize_t> dims) {
  replace_part(file, tensor, part, type, std::move(dims), 0);
}

void replace_part(hid_t file, const char* tensor, const char* part, hid_t type, std::vector<hsize_t> dims,
                  uint64_t fill) {
  hid_t group = H5Gopen2(file, tensor, H5P_DEFAULT);
  H5Ldelete(group, part, H5P_DEFAULT);
  hid_t space = H5Screate_simple(int(dims.size()), dims.data(), nullptr);
  hid_t set = H5Dcreate2(group, part, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  size_t n = 1;
  for (auto d : dims) n *= d;
  const size_t size = H5Tget_size(type);
  std::vector<unsigned char> bytes(n * size);
  for (size_t i = 0; i < n; ++i) std::memcpy(&bytes[i * size], &fill, size);
  H5Dwrite(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data());
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

TEST_CASE("malformed sub1 containers", "[malformed][quantized][sub1]") {
  const std::string w1 = "tensor 'layers.1.experts.2.w1'";  // [24, 16]: 2 blocks of 16 rows
  require_quantized_error("sub1", [](hid_t f, const char* t) { replace_part(f, t, "codes", H5T_STD_U16LE, {3}); },
                          {w1, "block offsets must run from 0 to the 3 codewords"});
  require_quantized_error("sub1", [](hid_t f, const char* t) { replace_part(f, t, "codes", H5T_STD_U16LE, {3, 1}); },
                          {w1, "'codes' must be a 1-D array"});
  require_quantized_error("sub1", [](hid_t f, const char* t) { replace_part(f, t, "blocks", H5T_STD_U32LE, {4}); },
                          {w1, "'blocks' holds 16 bytes but a [24, 16] sub1 matrix needs 12"});
  require_quantized_error("sub1", [](hid_t f, const char* t) { replace_part(f, t, "blocks", H5T_STD_U16LE, {3}); },
                          {w1, "'blocks' must be U32"});
  require_quantized_error("sub1", [](hid_t f, const char* t) { replace_part(f, t, "levels", H5T_STD_U8LE, {23, 2}); },
                          {w1, "'levels' must have 24 rows"});
  require_quantized_error("sub1", [](hid_t f, const char* t) { replace_part(f, t, "levels", H5T_STD_U8LE, {24, 3}); },
                          {w1, "'levels' holds 72 bytes but a [24, 16] sub1 matrix needs 48"});
  require_quantized_error(
      "sub1", [](hid_t f, const char* t) { replace_part(f, t, "level_scale", H5T_IEEE_F32LE, {1}, 0x7fc00000u); },
      {w1, "level_scale nan is not a finite non-negative number"});
  require_quantized_error("sub1", [](hid_t f, const char* t) { replace_part(f, t, "trit_counts", H5T_STD_U64LE, {2}); },
                          {w1, "'trit_counts' holds 16 bytes"});
  // Counts that lie rebuild another dictionary: refused, not decoded into
  // other weights. (All-zero or all-2^63 counts give the uniform dictionary,
  // which a real layer's skewed counts never do; this small random matrix's
  // counts are close to uniform, so the test lies with skewed ones.)
  for (const std::array<uint64_t, 3> lie : {std::array<uint64_t, 3>{1, 1000000, 1}, {uint64_t{1} << 63, 0, uint64_t{1} << 63}}) {
    INFO(lie[0] << " " << lie[1] << " " << lie[2]);
    require_quantized_error("sub1",
                            [&](hid_t f, const char* t) {
                              hid_t g = H5Gopen2(f, t, H5P_DEFAULT);
                              hid_t set = H5Dopen2(g, "trit_counts", H5P_DEFAULT);
                              H5Dwrite(set, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, lie.data());
                              H5Dclose(set);
                              H5Gclose(g);
                            },
                            {w1, "trit_counts or codes do not match"});
  }
  require_quantized_error("sub1",
                          [](hid_t f, const char* t) {  // one codeword fewer in block 0
                            hid_t g = H5Gopen2(f, t, H5P_DEFAULT);
                            hid_t set = H5Dopen2(g, "blocks", H5P_DEFAULT);
                            uint32_t offsets[3];
                            H5Dread(set, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, offsets);
                            offsets[1] -= 1;
                            H5Dwrite(set, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, offsets);
                            H5Dclose(set);
                            H5Gclose(g);
                          },
                          {w1, "block 0's codewords cover"});
  require_quantized_error("sub1",
                          [](hid_t f, const char* t) {
                            hid_t g = H5Gopen2(f, t, H5P_DEFAULT);
                            hid_t set = H5Dopen2(g, "codes", H5P_DEFAULT);
                            const uint16_t word = 65535;  // past the 65535-word dictionary
                            hsize_t one = 1, at = 0;
                            hid_t file_space = H5Dget_space(set), memory = H5Screate_simple(1, &one, nullptr);
                            H5Sselect_hyperslab(file_space, H5S_SELECT_SET, &at, nullptr, &one, nullptr);
                            H5Dwrite(set, H5T_NATIVE_UINT16, memory, file_space, H5P_DEFAULT, &word);
                            H5Sclose(memory);
                            H5Sclose(file_space);
                            H5Dclose(set);
                            H5Gclose(g);
                          },
                          {w1, "codeword 65535 is outside its 65535-word dictionary"});
  require_quantized_error("sub1", [](hid_t f, const char* t) { test::set_h5_string(f, t, "format", "ternary-qmoe"); },
                          {w1, "format 'ternary-qmoe' does not belong to encoding 'sub1'"});
}
