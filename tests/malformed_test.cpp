// Every kind of malformed input gets a clear one-line moec::Error naming the
// file (and the tensor where there is one), and never a crash. This suite is
// also run under AddressSanitizer + UBSan (scripts/run-tests.sh).
#include <catch2/catch.hpp>

#include <hdf5.h>

#include <cstring>

#include "io/checkpoint.h"
#include "io/container.h"
#include "io/convert.h"
#include "io/error.h"
#include "io/safetensors.h"
#include "tests/test_paths.h"

using namespace moec;
using test::TempDir;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The error's message: one line, containing every phrase.
void require_error(const std::function<void()>& action, std::initializer_list<std::string> phrases) {
  try {
    action();
  } catch (const Error& e) {
    std::string message = e.what();
    INFO(message);
    CHECK(message.find('\n') == std::string::npos);
    for (const auto& p : phrases) CHECK_THAT(message, Catch::Contains(p));
    return;
  }
  FAIL("no moec::Error thrown");
}

// A safetensors file from a literal header and `data` zero bytes;
// `length` overrides the header-length prefix.
fs::path raw_safetensors(const TempDir& tmp, const std::string& header, size_t data = 0,
                         std::optional<uint64_t> length = {}) {
  uint64_t n = length.value_or(header.size());
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = char((n >> (8 * i)) & 0xff);
  bytes += header;
  bytes.append(data, '\0');
  fs::path path = tmp / "bad.safetensors";
  test::write_file(path, bytes);
  return path;
}

void require_safetensors_error(const std::string& header, size_t data, std::initializer_list<std::string> phrases) {
  TempDir tmp;
  fs::path path = raw_safetensors(tmp, header, data);
  std::vector<std::string> all{path.string()};
  require_error([&] { SafetensorsFile file(path); }, phrases);
  require_error([&] { SafetensorsFile file(path); }, {"bad.safetensors"});
}

}  // namespace

TEST_CASE("malformed safetensors files", "[malformed][safetensors]") {
  TempDir tmp;
  SECTION("shorter than the length prefix") {
    test::write_file(tmp / "bad.safetensors", "abc");
    require_error([&] { SafetensorsFile f(tmp / "bad.safetensors"); }, {"bad.safetensors", "too short"});
  }
  SECTION("empty file") {
    test::write_file(tmp / "bad.safetensors", "");
    require_error([&] { SafetensorsFile f(tmp / "bad.safetensors"); }, {"too short"});
  }
  SECTION("header length over 100 MB") {
    auto p = raw_safetensors(tmp, "{}", 0, uint64_t{200'000'000});
    require_error([&] { SafetensorsFile f(p); }, {"over the 100 MB limit"});
  }
  SECTION("header length past the end of the file") {
    auto p = raw_safetensors(tmp, "{}", 0, uint64_t{4096});
    require_error([&] { SafetensorsFile f(p); }, {"runs past the end of the file"});
  }
  SECTION("nonexistent file") {
    require_error([&] { SafetensorsFile f(tmp / "nope.safetensors"); }, {"nope.safetensors", "cannot open"});
  }
}

TEST_CASE("malformed safetensors headers", "[malformed][safetensors]") {
  const std::string ok_entry = R"("w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  require_safetensors_error("{not json", 0, {"not valid JSON"});
  require_safetensors_error("[1, 2]", 0, {"not a JSON object"});
  require_safetensors_error(R"({"w": 3})", 0, {"tensor 'w'", "entry is not an object"});
  require_safetensors_error(R"({"w": {"shape": [2], "data_offsets": [0, 8]}})", 8, {"tensor 'w'", "missing 'dtype'"});
  require_safetensors_error(R"({"w": {"dtype": "F8_E5M2", "shape": [2], "data_offsets": [0, 2]}})", 2,
                            {"tensor 'w'", "unknown dtype 'F8_E5M2'"});
  require_safetensors_error(R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8,
                            {"negative dimension"});
  require_safetensors_error(R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", 8,
                            {"non-integer dimension"});
  require_safetensors_error(R"({"w": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}})", 8,
                            {"shape is not an array"});
  require_safetensors_error(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 9]}})", 8,
                            {"data_offsets is not two"});
  require_safetensors_error(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [-1, 8]}})", 8,
                            {"data_offsets is not two"});
  require_safetensors_error(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", 8,
                            {"end before they begin"});
  require_safetensors_error(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8,
                            {"tensor 'w'", "holds 8 bytes but its shape and dtype need 12"});
  require_safetensors_error(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})",
                            8, {"is too large"});
  // 10^12 elements whose offsets even agree with the claim: refused by the cap, nothing allocated
  require_safetensors_error(
      R"({"w": {"dtype": "U8", "shape": [1000000, 1000000], "data_offsets": [0, 1000000000000]}})", 8,
      {"tensor 'w'", "shape [1000000, 1000000] is too large (limit 68719476736 elements)"});
  require_safetensors_error(R"({"w": {"dtype": "U8", "shape": [1,1,1,1,1,1,1,1,1], "data_offsets": [0, 1]}})", 8,
                            {"tensor 'w'", "9 dimensions (limit 8)"});
  require_safetensors_error(R"({")" + std::string(2000, 'n') + R"(": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}})",
                            8, {"name of 2000 bytes (limit 1024)"});
  require_safetensors_error("{" + ok_entry + "}", 4, {"tensor 'w'", "run past the data area"});
  require_safetensors_error("{" + ok_entry + R"(, "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                            12, {"tensor 'v'", "overlaps"});
  require_safetensors_error("{" + ok_entry + R"(, "v": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]}})",
                            16, {"tensor 'v'", "4 unused bytes"});
  require_safetensors_error("{" + ok_entry + "}", 12, {"4 bytes after the last tensor"});
  require_safetensors_error("{" + ok_entry + R"(, "__metadata__": {"format": 1}})", 8,
                            {"__metadata__ value 'format' is not a string"});
  require_safetensors_error("{" + ok_entry + R"(, "__metadata__": ["pt"]})", 8, {"__metadata__ is not an object"});
  require_safetensors_error("{" + ok_entry + ", " + ok_entry + "}", 8, {"tensor 'w'", "listed twice"});
}

TEST_CASE("malformed config.json", "[malformed][config]") {
  TempDir tmp;
  auto with_config = [&](const std::function<void(json&)>& edit, std::initializer_list<std::string> phrases) {
    fs::path dir = tmp / "m";
    fs::remove_all(dir);
    test::write_tiny_checkpoint(dir, test::tiny_config());
    json config = test::tiny_config();
    edit(config);
    test::write_file(dir / "config.json", config.dump());
    require_error([&] { open_checkpoint(dir); }, phrases);
  };
  with_config([](json& c) { c["model_type"] = "deepseek_v3"; }, {"config.json", "model_type 'deepseek_v3' is not supported"});
  with_config([](json& c) { c.erase("model_type"); }, {"config.json", "missing 'model_type'"});
  with_config([](json& c) { c.erase("hidden_size"); }, {"config.json", "missing 'hidden_size'"});
  with_config([](json& c) { c["num_local_experts"] = 0; }, {"'num_local_experts' must be a positive integer"});
  with_config([](json& c) { c["num_hidden_layers"] = "4"; }, {"'num_hidden_layers' must be a positive integer"});
  with_config([](json& c) { c["num_experts_per_tok"] = 9; }, {"num_experts_per_tok 9 exceeds num_local_experts 4"});
  // each within its own cap, together a tensor list of 3 · 2^28 experts
  with_config([](json& c) { c["num_hidden_layers"] = 4096; c["num_local_experts"] = 65536; },
              {"4096 layers of 65536 experts is implausibly large"});
  with_config([](json& c) { c["num_key_value_heads"] = 3; }, {"not a multiple of num_key_value_heads 3"});
  with_config([](json& c) { c["hidden_act"] = "gelu"; }, {"hidden_act \"gelu\" is not supported"});
  with_config([](json& c) { c["rope_theta"] = -1; }, {"'rope_theta' must be a positive number"});
  with_config([](json& c) { c["num_hidden_layers"] = 3000000000LL; }, {"'num_hidden_layers' = 3000000000 is implausibly large"});
  with_config([](json& c) { c["max_position_embeddings"] = 1LL << 40; }, {"'max_position_embeddings'", "implausibly large"});

  SECTION("not JSON") {
    test::write_tiny_checkpoint(tmp / "j", test::tiny_config());
    test::write_file(tmp / "j" / "config.json", "{\"model_type\": ");
    require_error([&] { open_checkpoint(tmp / "j"); }, {"config.json", "not valid JSON"});
  }
  SECTION("missing") {
    test::write_tiny_checkpoint(tmp / "n", test::tiny_config());
    fs::remove(tmp / "n" / "config.json");
    require_error([&] { open_checkpoint(tmp / "n"); }, {"no config.json"});
  }
}

TEST_CASE("checkpoints whose tensors do not fit the config", "[malformed][checkpoint]") {
  TempDir tmp;
  auto with_tensors = [&](const std::function<void(std::vector<test::TinyTensor>&)>& edit,
                          std::initializer_list<std::string> phrases) {
    fs::path dir = tmp / "m";
    fs::remove_all(dir);
    test::write_tiny_checkpoint(dir, test::tiny_config(), edit);
    require_error([&] { open_checkpoint(dir); }, phrases);
  };
  const std::string w2 = "model.layers.1.block_sparse_moe.experts.2.w2.weight";
  with_tensors([&](auto& t) { std::erase_if(t, [&](auto& x) { return x.name == w2; }); },
               {"tensor '" + w2 + "'", "missing from the checkpoint"});
  with_tensors([&](auto& t) { for (auto& x : t) if (x.name == w2) x.shape = {24, 16}; },
               {"model.safetensors", "tensor '" + w2 + "'", "shape [24, 16] but the config needs [16, 24]"});
  with_tensors([&](auto& t) { t.push_back({"model.layers.0.mlp.up_proj.weight", "BF16", {4}}); },
               {"tensor 'model.layers.0.mlp.up_proj.weight'", "not a mixtral tensor name"});
  with_tensors([&](auto& t) { t.push_back({"model.layers.5.input_layernorm.weight", "BF16", {16}}); },
               {"layer 5 but the config has 2 layers"});
  with_tensors([&](auto& t) { t.push_back({"model.layers.0.block_sparse_moe.experts.4.w1.weight", "BF16", {24, 16}}); },
               {"expert 4 but the config has 4 experts"});
  with_tensors([&](auto& t) { for (auto& x : t) if (x.name == w2) x.dtype = "I32"; },
               {"tensor '" + w2 + "'", "dtype I32 is not a floating-point weight type"});

  SECTION("no weights at all") {
    test::write_tiny_checkpoint(tmp / "e", test::tiny_config());
    fs::remove(tmp / "e" / "model.safetensors");
    require_error([&] { open_checkpoint(tmp / "e"); }, {"neither model.safetensors nor"});
  }
  SECTION("truncated weights") {
    test::write_tiny_checkpoint(tmp / "t", test::tiny_config());
    fs::resize_file(tmp / "t" / "model.safetensors", fs::file_size(tmp / "t" / "model.safetensors") - 100);
    require_error([&] { open_checkpoint(tmp / "t"); }, {"model.safetensors", "file truncated?"});
  }
}

TEST_CASE("sharded checkpoints whose index lies", "[malformed][checkpoint]") {
  TempDir tmp;
  fs::path dir = tmp / "s";
  test::write_tiny_checkpoint(dir, test::tiny_config());
  fs::rename(dir / "model.safetensors", dir / "model-00001-of-00001.safetensors");
  json map;
  SafetensorsFile shard(dir / "model-00001-of-00001.safetensors");
  for (const auto& e : shard.entries())
    map[e.name] = "model-00001-of-00001.safetensors";
  auto write_index = [&](const json& weight_map) {
    test::write_file(dir / "model.safetensors.index.json", json{{"weight_map", weight_map}}.dump());
  };
  SECTION("a consistent index opens") {
    write_index(map);
    CHECK(open_checkpoint(dir)->tensors().size() == 41);
  }
  SECTION("shard missing") {
    json m = map;
    m["model.norm.weight"] = "model-00002-of-00002.safetensors";
    write_index(m);
    require_error([&] { open_checkpoint(dir); }, {"model.safetensors.index.json", "shard 'model-00002-of-00002.safetensors'", "does not exist"});
  }
  SECTION("tensor in the shard but not in the index") {
    json m = map;
    m.erase("model.norm.weight");
    write_index(m);
    require_error([&] { open_checkpoint(dir); }, {"tensor 'model.norm.weight'", "not listed in"});
  }
  SECTION("tensor in the index but not in the shard") {
    json m = map;
    m["model.layers.0.extra.weight"] = "model-00001-of-00001.safetensors";
    write_index(m);
    require_error([&] { open_checkpoint(dir); }, {"tensor 'model.layers.0.extra.weight'", "listed in the index but missing"});
  }
  SECTION("shard name escaping the folder") {
    json m = map;
    m["model.norm.weight"] = "../x.safetensors";
    write_index(m);
    require_error([&] { open_checkpoint(dir); }, {"is not a file in this folder"});
  }
  SECTION("no weight_map") {
    test::write_file(dir / "model.safetensors.index.json", "{}");
    require_error([&] { open_checkpoint(dir); }, {"missing 'weight_map'"});
  }
}

namespace {

// Converts the tiny model, then lets `edit` damage the container through the
// HDF5 API before it is opened again.
void require_container_error(const std::function<void(hid_t)>& edit, std::initializer_list<std::string> phrases) {
  TempDir tmp;
  test::write_tiny_checkpoint(tmp / "hf", test::tiny_config());
  convert_to_container(*open_checkpoint(tmp / "hf"), tmp / "m.h5", false, "test");
  hid_t file = H5Fopen((tmp / "m.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(file >= 0);
  edit(file);
  H5Fclose(file);
  require_error([&] { open_checkpoint(tmp / "m.h5"); }, phrases);
}


// Replaces the int64 shape attribute of the object at `path`.
void set_shape(hid_t file, const char* path, std::vector<int64_t> shape) {
  hid_t target = H5Oopen(file, path, H5P_DEFAULT);
  H5Adelete(target, "shape");
  hsize_t n = shape.size();
  hid_t space = H5Screate_simple(1, &n, nullptr);
  hid_t attr = H5Acreate2(target, "shape", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(attr, H5T_NATIVE_INT64, shape.data());
  H5Aclose(attr);
  H5Sclose(space);
  H5Oclose(target);
}

}  // namespace

TEST_CASE("malformed containers", "[malformed][container]") {
  const char* w1 = "/tensors/layers/1/experts/2/w1";
  require_container_error([](hid_t f) { H5Adelete(f, "moec_format"); }, {"m.h5", "not a moec container"});
  require_container_error(
      [](hid_t f) {
        H5Adelete(f, "format_version");
        int64_t v = 99;
        hid_t space = H5Screate(H5S_SCALAR);
        hid_t attr = H5Acreate2(f, "format_version", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(attr, H5T_NATIVE_INT64, &v);
        H5Aclose(attr);
        H5Sclose(space);
      },
      {"m.h5", "format version 99 is not supported"});
  require_container_error(
      [](hid_t f) {
        int64_t v = 1;
        hid_t attr = H5Aopen(f, "format_version", H5P_DEFAULT);
        H5Awrite(attr, H5T_NATIVE_INT64, &v);
        H5Aclose(attr);
      },
      {"m.h5", "container format version 1 (variable-length strings) is no longer read"});
  require_container_error([](hid_t f) { test::set_h5_string(f, "/", "config", "{oops"); }, {"config attribute is not valid JSON"});
  require_container_error([](hid_t f) { test::set_h5_string(f, "/", "config", R"({"model_type": "dbrx"})"); },
                          {"model_type 'dbrx' is not supported"});
  require_container_error([&](hid_t f) { test::set_h5_string(f, w1, "encoding", "q4_k"); },
                          {"tensor 'layers.1.experts.2.w1'", "unknown encoding 'q4_k'"});
  require_container_error([&](hid_t f) { test::set_h5_string(f, w1, "encoding", "f32"); },
                          {"tensor 'layers.1.experts.2.w1'", "stored element type does not match encoding 'f32'"});
  require_container_error([&](hid_t f) { hid_t o = H5Oopen(f, w1, H5P_DEFAULT); H5Adelete(o, "encoding"); H5Oclose(o); },
                          {"tensor 'layers.1.experts.2.w1'", "missing the encoding attribute"});
  require_container_error([&](hid_t f) { H5Ldelete(f, w1, H5P_DEFAULT); },
                          {"m.h5", "tensor 'layers.1.experts.2.w1'", "missing"});
  require_container_error(
      [&](hid_t f) {
        set_shape(f, w1, {16, 24});
      },
      {"tensor 'layers.1.experts.2.w1'", "shape [16, 24] but the config needs [24, 16]"});
  require_container_error(
      [&](hid_t f) {  // right attributes, wrong dataset extent
        H5Ldelete(f, w1, H5P_DEFAULT);
        hsize_t dims[2] = {16, 24};
        hid_t space = H5Screate_simple(2, dims, nullptr);
        H5Dclose(H5Dcreate2(f, w1, H5T_STD_U16LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        H5Sclose(space);
        test::set_h5_string(f, w1, "encoding", "bf16");
        set_shape(f, w1, {24, 16});
      },
      {"tensor 'layers.1.experts.2.w1'", "dataset extent does not match"});
}

TEST_CASE("damaged container files", "[malformed][container]") {
  TempDir tmp;
  test::write_tiny_checkpoint(tmp / "hf", test::tiny_config());
  convert_to_container(*open_checkpoint(tmp / "hf"), tmp / "m.h5", false, "test");
  SECTION("truncated") {
    fs::resize_file(tmp / "m.h5", fs::file_size(tmp / "m.h5") / 2);
    require_error([&] { ContainerReader r(tmp / "m.h5"); }, {"m.h5"});
  }
  SECTION("not HDF5 at all") {
    test::write_file(tmp / "x.h5", "this is not an HDF5 file");
    require_error([&] { open_checkpoint(tmp / "x.h5"); }, {"x.h5", "neither a Hugging Face model folder nor"});
    require_error([&] { ContainerReader r(tmp / "x.h5"); }, {"x.h5", "not a readable HDF5 file"});
  }
  SECTION("an HDF5 file of someone else's") {
    hid_t f = H5Fcreate((tmp / "other.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    require_error([&] { open_checkpoint(tmp / "other.h5"); }, {"other.h5", "not a moec container"});
  }
  SECTION("missing path") {
    require_error([&] { open_checkpoint(tmp / "none"); }, {"none", "no such file or directory"});
  }
}

TEST_CASE("the CLI reports bad input in one line and leaves no output", "[malformed][cli]") {
  TempDir tmp;
  test::write_tiny_checkpoint(tmp / "hf", test::tiny_config());
  fs::resize_file(tmp / "hf" / "model.safetensors", fs::file_size(tmp / "hf" / "model.safetensors") - 10);
  auto check_one_line = [](const test::CommandResult& r) {
    CHECK(r.exit_code != 0);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  };

  auto convert = test::run_moec("convert '" + (tmp / "hf").string() + "' -o '" + (tmp / "out.h5").string() + "'");
  check_one_line(convert);
  CHECK(convert.exit_code == 1);
  CHECK_THAT(convert.err, Catch::StartsWith("moec: error: ") && Catch::Contains("model.safetensors"));
  CHECK_FALSE(fs::exists(tmp / "out.h5"));
  CHECK(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()) == 1);  // only hf/

  auto inspect = test::run_moec("inspect '" + (tmp / "hf").string() + "'");
  check_one_line(inspect);
  CHECK(inspect.out.empty());

  check_one_line(test::run_moec("inspect"));                      // missing argument
  check_one_line(test::run_moec("frobnicate x"));                 // unknown subcommand
  check_one_line(test::run_moec("inspect x --no-such-flag"));     // unknown flag
  check_one_line(test::run_moec("export x -o y --max-shard-size -1"));  // bad value
  check_one_line(test::run_moec("convert '" + (tmp / "nope").string() + "' -o '" + (tmp / "o.h5").string() + "'"));
}

TEST_CASE("container datasets that claim more than they store are refused before allocation", "[malformed][container]") {
  TempDir tmp;
  test::write_tiny_checkpoint(tmp / "hf", test::tiny_config());
  convert_to_container(*open_checkpoint(tmp / "hf"), tmp / "m.h5", false, "test");
  hid_t file = H5Fopen((tmp / "m.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(file >= 0);
  // A chunked tokenizer.json of 512 MiB with no chunk written: HDF5 would
  // hand back fill values for all of it.
  hsize_t extent = hsize_t{1} << 29, chunk = hsize_t{1} << 20;
  hid_t space = H5Screate_simple(1, &extent, nullptr);
  hid_t plist = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(plist, 1, &chunk);
  hid_t set = H5Dcreate2(file, "tokenizer.json", H5T_STD_U8LE, space, H5P_DEFAULT, plist, H5P_DEFAULT);
  REQUIRE(set >= 0);
  H5Dclose(set);
  H5Pclose(plist);
  H5Sclose(space);
  H5Fclose(file);
  auto source = open_checkpoint(tmp / "m.h5");
  require_error([&] { (void)source->tokenizer_json(); }, {"m.h5", "tokenizer.json claims 536870912 bytes"});
}

TEST_CASE("inspect --verify decodes every tensor and names the first non-finite value", "[malformed][cli]") {
  TempDir tmp;
  test::write_tiny_checkpoint(tmp / "hf", test::tiny_config());
  const std::string h5 = (tmp / "m.h5").string();
  convert_to_container(*open_checkpoint(tmp / "hf"), tmp / "m.h5", false, "test");
  auto fine = test::run_moec("inspect --verify '" + h5 + "'");
  CHECK(fine.exit_code == 0);
  CHECK_THAT(fine.err, Catch::Contains("verified:") && Catch::Contains("decode to finite numbers"));
  // A NaN in the stored final norm: data, not structure, so only --verify looks.
  hid_t file = H5Fopen(h5.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t set = H5Dopen2(file, "/tensors/norm", H5P_DEFAULT);
  std::vector<uint16_t> values(16, 0x3f80);  // bf16 1.0
  values[5] = 0x7fc0;                        // bf16 NaN
  REQUIRE(H5Dwrite(set, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) >= 0);
  H5Dclose(set);
  H5Fclose(file);
  CHECK(test::run_moec("inspect '" + h5 + "'").exit_code == 0);
  auto bad = test::run_moec("inspect --verify '" + h5 + "'");
  CHECK(bad.exit_code != 0);
  CHECK_THAT(bad.err, Catch::Contains("m.h5: tensor 'norm': element 5 is nan"));
  // The same NaN in the Hugging Face folder: named as its file names it.
  const fs::path st = tmp / "hf" / "model.safetensors";
  std::string bytes = test::read_file(st);
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  const auto meta = nlohmann::json::parse(bytes.substr(8, header));
  const uint64_t at = 8 + header + meta["model.norm.weight"]["data_offsets"][0].get<uint64_t>() + 2 * 5;
  bytes[at] = char(0xc0);  // bf16 NaN, little-endian
  bytes[at + 1] = char(0x7f);
  test::write_file(st, bytes);
  auto hf = test::run_moec("inspect --verify '" + (tmp / "hf").string() + "'");
  CHECK(hf.exit_code != 0);
  CHECK_THAT(hf.err, Catch::Contains("tensor 'model.norm.weight': element 5 is nan"));
}
