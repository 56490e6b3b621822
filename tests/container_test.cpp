#include <catch2/catch.hpp>
#include <hdf5.h>

#include "io/container.h"
#include "io/convert.h"
#include "io/error.h"
#include "io/hf_checkpoint.h"
#include "tests/test_paths.h"

using namespace moec;
using test::TempDir;
namespace fs = std::filesystem;

TEST_CASE("container paths mirror logical names", "[container]") {
  CHECK(container_path({TensorRole::ExpertW3, 1, 7}) == "/tensors/layers/1/experts/7/w3");
  CHECK(container_path({TensorRole::Embed}) == "/tensors/embed");
  CHECK(container_path({TensorRole::AttnQ, 0}) == "/tensors/layers/0/attn/q");
}

TEST_CASE("a container writer refuses to finish an incomplete model", "[container]") {
  TempDir tmp;
  test::write_tiny_checkpoint(tmp / "hf", test::tiny_config());
  HfCheckpoint hf(tmp / "hf");
  {
    ContainerWriter writer(tmp / "m.h5", false, hf.config_json(), {});
    const TensorInfo& first = hf.tensors().front();
    writer.write_dense(first, first.stored_name, hf.read(first.key).bytes());
    CHECK_THROWS_WITH(writer.commit(), Catch::Contains("1 of 41 tensors written"));
  }
  CHECK_FALSE(fs::exists(tmp / "m.h5"));
  CHECK(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()) == 1);  // only hf/
}

TEST_CASE("f16 and f32 tensors survive the container too", "[container]") {
  TempDir tmp;
  test::write_tiny_checkpoint(tmp / "hf", test::tiny_config(), [](std::vector<test::TinyTensor>& tensors) {
    for (auto& t : tensors) {
      if (t.name.find("experts.1.") != std::string::npos) t.dtype = "F16";
      if (t.name.find("norm") != std::string::npos) t.dtype = "F32";
    }
  });
  HfCheckpoint hf(tmp / "hf");
  convert_to_container(hf, tmp / "m.h5", false, "test");
  ContainerReader reader(tmp / "m.h5");
  for (const TensorInfo& t : hf.tensors()) {
    REQUIRE(reader.info(t.key).encoding == t.encoding);
    auto a = hf.read(t.key).to_f32(), b = reader.read(t.key).to_f32();
    REQUIRE(a == b);
  }
  CHECK(reader.info({TensorRole::FinalNorm}).encoding == "f32");
  CHECK(reader.info({TensorRole::ExpertW1, 0, 1}).encoding == "f16");
  CHECK_FALSE(reader.tokenizer_model());  // the tiny model has none
}

struct TimedObjects {
  int objects = 0;
  std::vector<std::string> timed;
};

template <class Info>
herr_t note_timed(hid_t, const char* name, const Info* info, void* data) {
  auto* seen = static_cast<TimedObjects*>(data);
  ++seen->objects;
  if (info->mtime != 0 || info->ctime != 0 || info->btime != 0) seen->timed.push_back(name);
  return 0;
}

TEST_CASE("container: the tokenizer stored deflated and read back as it was; objects carry no timestamps",
          "[container]") {
  TempDir tmp;
  auto hf = open_checkpoint(test::fixture_model_dir());
  const auto original = hf->tokenizer_model();
  REQUIRE(original);
  REQUIRE(original->size() > 4096);
  convert_to_container(*hf, tmp / "m.h5", false, "test");
  ContainerReader reader(tmp / "m.h5");
  CHECK(reader.tokenizer_model() == original);

  const hid_t file = H5Fopen((tmp / "m.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(file >= 0);
  const hid_t set = H5Dopen2(file, "/tokenizer.model", H5P_DEFAULT);
  REQUIRE(set >= 0);
  if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
    const hid_t dcpl = H5Dget_create_plist(set);
    CHECK(H5Pget_nfilters(dcpl) == 1);
    H5Pclose(dcpl);
    INFO(H5Dget_storage_size(set) << " stored bytes for " << original->size());
    CHECK(H5Dget_storage_size(set) < original->size() / 2);
  }
  H5Dclose(set);
  // Every object, the root and the groups on the way to each tensor too.
  TimedObjects seen;
#if H5_VERSION_GE(1, 12, 0)
  REQUIRE(H5Ovisit3(file, H5_INDEX_NAME, H5_ITER_NATIVE, note_timed<H5O_info2_t>, &seen, H5O_INFO_TIME) >= 0);
#else
  REQUIRE(H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_NATIVE, note_timed<H5O_info_t>, &seen, H5O_INFO_TIME) >= 0);
#endif
  CHECK(seen.objects > 100);
  INFO("first timed object: " << (seen.timed.empty() ? "none" : seen.timed.front()));
  CHECK(seen.timed.empty());
  H5Fclose(file);
}
