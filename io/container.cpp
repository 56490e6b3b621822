#include "io/container.h"

#include <algorithm>
#include <ctime>

#include <fmt/ranges.h>

#include "io/error.h"
#include "io/safetensors.h"

#ifndef MOEC_VERSION
#define MOEC_VERSION "unknown"
#endif

namespace moec {

namespace fs = std::filesystem;
using h5::Handle;

namespace {

constexpr const char* kTensorsGroup = "/tensors";
constexpr const char* kTokenizerDataset = "/tokenizer.model";

// HDF5 has no bf16 type, so 16-bit encodings are stored as their bit
// patterns (uint16); f32 is a native IEEE float. docs/container.md shows how
// to view them from numpy.
hid_t storage_type(DType dtype) { return dtype == DType::F32 ? H5T_IEEE_F32LE : H5T_STD_U16LE; }

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

// Creates every missing group on the way to `path`'s parent.
Handle link_creation_with_parents() {
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  return lcpl;
}

bool same_type(hid_t a, hid_t b) { return H5Tequal(a, b) > 0; }

// H5Lexists needs every intermediate link to exist, so check them in turn.
bool path_exists(hid_t file, const std::string& path) {
  for (size_t pos = path.find('/', 1);; pos = path.find('/', pos + 1)) {
    std::string prefix = path.substr(0, pos);
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

}  // namespace

bool is_container_file(const fs::path& path) {
  h5::silence_errors();
  return H5Fis_hdf5(path.c_str()) > 0;
}

std::string container_path(const TensorKey& key) {
  std::string name = logical_name(key);
  std::replace(name.begin(), name.end(), '.', '/');
  return std::string(kTensorsGroup) + "/" + name;
}

// ---------------------------------------------------------------- writer

ContainerWriter::ContainerWriter(const fs::path& target, bool overwrite, const nlohmann::json& config_json,
                                 const Provenance& provenance)
    : output_(target, overwrite), config_(parse_model_config(config_json, target.string() + " (config)")) {
  h5::silence_errors();
  const std::string what = target.string();
  // Large raw data aligned to 64 bytes so mapped tensors suit SIMD loads.
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_alignment(fapl.get(), 4096, 64);
  file_ = Handle(H5Fcreate(output_.temp_path().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
  if (!file_.valid()) fail("{}: cannot create HDF5 file", output_.temp_path().string());
  hid_t root = file_.get();
  h5::write_string_attribute(root, "moec_format", kContainerMagic, what);
  h5::write_int_attribute(root, "format_version", kContainerVersion, what);
  h5::write_string_attribute(root, "architecture", config_.model_type, what);
  h5::write_string_attribute(root, "config", config_json.dump(2), what);
  h5::write_string_attribute(root, "moec_version", MOEC_VERSION, what);
  h5::write_string_attribute(root, "created_by", provenance.command_line, what);
  h5::write_string_attribute(root, "created_at", utc_now(), what);
  nlohmann::json prov{{"source", provenance.source},
                      {"source_format", provenance.source_format},
                      {"source_files", provenance.source_files}};
  h5::write_string_attribute(root, "provenance", prov.dump(), what);
  Handle group(H5Gcreate2(root, kTensorsGroup, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  if (!group.valid()) fail("{}: cannot create group {}", what, kTensorsGroup);
}

ContainerWriter::~ContainerWriter() = default;

void ContainerWriter::write_tokenizer(std::span<const std::byte> model) {
  hsize_t n = model.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  Handle set(H5Dcreate2(file_.get(), kTokenizerDataset, H5T_STD_U8LE, space.get(), H5P_DEFAULT, H5P_DEFAULT,
                        H5P_DEFAULT),
             H5Dclose);
  if (!set.valid() || (n && H5Dwrite(set.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, model.data()) < 0))
    fail("{}: cannot write {}", output_.target().string(), kTokenizerDataset);
}

void ContainerWriter::write_dense(const TensorInfo& info, std::string_view hf_name, std::span<const std::byte> bytes) {
  const std::string what = output_.target().string();
  auto dtype = info.dense_dtype();
  if (!dtype || !dtype_is_float(*dtype))
    fail("{}: tensor '{}': encoding '{}' is not a dense float type", what, info.name, info.encoding);
  if (bytes.size() != info.numel() * dtype_size(*dtype))
    fail("{}: tensor '{}': {} bytes for shape [{}] in {}", what, info.name, bytes.size(), fmt::join(info.shape, ", "),
         info.encoding);
  std::vector<hsize_t> dims(info.shape.begin(), info.shape.end());
  Handle space(dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(int(dims.size()), dims.data(), nullptr),
               H5Sclose);
  Handle lcpl = link_creation_with_parents();
  const std::string path = container_path(info.key);
  Handle set(H5Dcreate2(file_.get(), path.c_str(), storage_type(*dtype), space.get(), lcpl.get(), H5P_DEFAULT,
                        H5P_DEFAULT),
             H5Dclose);
  if (!set.valid()) fail("{}: tensor '{}': cannot create dataset {}", what, info.name, path);
  if (!bytes.empty() &&
      H5Dwrite(set.get(), storage_type(*dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) < 0)
    fail("{}: tensor '{}': write failed", what, info.name);
  h5::write_string_attribute(set.get(), "encoding", info.encoding, what);
  h5::write_int_array_attribute(set.get(), "shape", info.shape, what);
  h5::write_string_attribute(set.get(), "hf_name", std::string(hf_name), what);
  ++written_;
}

void ContainerWriter::commit() {
  const size_t expected = expected_tensors(config_).size();
  if (written_ != expected)
    fail("{}: {} of {} tensors written; not finishing an incomplete container", output_.target().string(), written_,
         expected);
  if (H5Fflush(file_.get(), H5F_SCOPE_GLOBAL) < 0) fail("{}: flush failed", output_.temp_path().string());
  file_.reset();
  output_.commit();
}

// ---------------------------------------------------------------- reader

ContainerReader::ContainerReader(const fs::path& path) {
  h5::silence_errors();
  path_ = path;
  const std::string file = path.string();
  file_ = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file_.valid()) fail("{}: not a readable HDF5 file (truncated or corrupt?)", file);
  hid_t root = file_.get();
  if (h5::read_string_attribute(root, "moec_format") != kContainerMagic)
    fail("{}: HDF5 file is not a moec container (no moec_format=\"moec\" attribute)", file);
  auto version = h5::read_int_attribute(root, "format_version");
  if (!version) fail("{}: missing format_version", file);
  if (*version < 1 || *version > kContainerVersion)
    fail("{}: container format version {} is not supported (this moec reads 1..{})", file, *version,
         kContainerVersion);
  version_ = *version;
  auto config = h5::read_string_attribute(root, "config");
  if (!config) fail("{}: missing the config attribute", file);
  config_json_ = nlohmann::json::parse(*config, nullptr, false);
  if (config_json_.is_discarded()) fail("{}: config attribute is not valid JSON", file);
  config_ = parse_model_config(config_json_, file + " (config)");
  if (auto prov = h5::read_string_attribute(root, "provenance")) provenance_ = nlohmann::json::parse(*prov, nullptr, false);

  mapping_ = MappedFile(path);
  for (const TensorKey& key : expected_tensors(config_)) open_tensor(key);
}

void ContainerReader::open_tensor(const TensorKey& key) {
  const std::string file = path_.string();
  const std::string name = logical_name(key);
  const std::string path = container_path(key);
  if (!path_exists(file_.get(), path)) fail("{}: tensor '{}': missing ({})", file, name, path);
  Handle set(H5Dopen2(file_.get(), path.c_str(), H5P_DEFAULT), H5Dclose);
  if (!set.valid()) fail("{}: tensor '{}': {} is not a dataset", file, name, path);

  auto encoding = h5::read_string_attribute(set.get(), "encoding");
  if (!encoding) fail("{}: tensor '{}': missing the encoding attribute", file, name);
  auto dtype = dtype_from_encoding(*encoding);
  if (!dtype || !dtype_is_float(*dtype)) fail("{}: tensor '{}': unknown encoding '{}'", file, name, *encoding);
  auto shape = h5::read_int_array_attribute(set.get(), "shape");
  if (!shape) fail("{}: tensor '{}': missing the shape attribute", file, name);
  std::vector<int64_t> want = expected_shape(config_, key);
  if (*shape != want)
    fail("{}: tensor '{}': shape [{}] but the config needs [{}]", file, name, fmt::join(*shape, ", "),
         fmt::join(want, ", "));

  Handle type(H5Dget_type(set.get()), H5Tclose);
  if (!same_type(type.get(), storage_type(*dtype)))
    fail("{}: tensor '{}': stored element type does not match encoding '{}'", file, name, *encoding);
  Handle space(H5Dget_space(set.get()), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(rank > 0 ? rank : 0);
  if (rank < 0 || H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0 ||
      !std::equal(dims.begin(), dims.end(), want.begin(), want.end(),
                  [](hsize_t d, int64_t w) { return d == static_cast<hsize_t>(w); }))
    fail("{}: tensor '{}': dataset extent does not match its shape attribute", file, name);

  const uint64_t nbytes = shape_numel(want) * dtype_size(*dtype);
  haddr_t offset = H5Dget_offset(set.get());
  if (offset != HADDR_UNDEF) {
    if (offset > mapping_.size() || nbytes > mapping_.size() - offset)
      fail("{}: tensor '{}': data at offset {} runs past the end of the file; truncated?", file, name, offset);
    offsets_[key] = offset;
  } else if (nbytes > 0 && H5Dget_storage_size(set.get()) == 0) {
    fail("{}: tensor '{}': dataset has no data written", file, name);
  }
  tensors_.push_back({key, name, path, *encoding, want, nbytes});
}

TensorData ContainerReader::read(const TensorKey& key) const {
  const TensorInfo& meta = info(key);
  auto it = offsets_.find(key);
  if (it != offsets_.end()) return TensorData(meta, mapping_.bytes().subspan(it->second, meta.nbytes));
  // Chunked or filtered datasets (written by other tools) cannot be mapped.
  std::vector<std::byte> buffer(meta.nbytes);
  Handle set(H5Dopen2(file_.get(), meta.stored_name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!set.valid() || (meta.nbytes && H5Dread(set.get(), storage_type(*meta.dense_dtype()), H5S_ALL, H5S_ALL,
                                               H5P_DEFAULT, buffer.data()) < 0))
    fail("{}: tensor '{}': read failed", path_.string(), meta.name);
  return TensorData(meta, std::move(buffer));
}

std::optional<std::vector<std::byte>> ContainerReader::tokenizer_model() const {
  if (H5Lexists(file_.get(), kTokenizerDataset, H5P_DEFAULT) <= 0) return std::nullopt;
  Handle set(H5Dopen2(file_.get(), kTokenizerDataset, H5P_DEFAULT), H5Dclose);
  Handle space(H5Dget_space(set.get()), H5Sclose);
  hssize_t n = set.valid() ? H5Sget_simple_extent_npoints(space.get()) : -1;
  if (n < 0) fail("{}: {} is unreadable", path_.string(), kTokenizerDataset);
  std::vector<std::byte> bytes(static_cast<size_t>(n));
  if (n && H5Dread(set.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) < 0)
    fail("{}: {} read failed", path_.string(), kTokenizerDataset);
  return bytes;
}

}  // namespace moec
