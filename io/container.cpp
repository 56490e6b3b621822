#include "io/container.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <ctime>

#include <fmt/ranges.h>

#include "io/error.h"
#include "io/limits.h"
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
constexpr const char* kTokenizerJsonDataset = "/tokenizer.json";
constexpr const char* kTokenizerConfigDataset = "/tokenizer_config.json";
constexpr hsize_t kAlignment = 8;  // see ContainerWriter's constructor

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

bool same_type(hid_t a, hid_t b) { return H5Tequal(a, b) > 0; }

// Encoded tensors: an HDF5 group whose member datasets are the parts. The
// parts each encoding must have; their sizes are checked by the codec that
// reads them (quant/), which knows the format.
struct EncodingPart {
  std::string_view name;
  DType dtype;
  bool per_row;  // a 2-D array with one row per weight row; else 1-D
};
struct EncodingParts {
  std::string_view encoding;
  std::vector<EncodingPart> parts;
};

const EncodingParts* find_encoding(std::string_view encoding) {
  static const std::vector<EncodingParts> table{
      {"affine", {{"codes", DType::U8, true}, {"scales", DType::U16, true}, {"zeros", DType::U8, true}}},
      {"ternary", {{"codes", DType::U8, true}, {"scales", DType::U16, true}}},
      {"sub1",
       {{"codes", DType::U16, false},
        {"blocks", DType::U32, false},
        {"levels", DType::U8, true},
        {"trit_counts", DType::U64, false},
        {"level_scale", DType::F32, false}}},
  };
  for (const auto& e : table)
    if (e.encoding == encoding) return &e;
  return nullptr;
}

hid_t part_type(DType dtype) {
  switch (dtype) {
    case DType::U16: return H5T_STD_U16LE;
    case DType::U32: return H5T_STD_U32LE;
    case DType::U64: return H5T_STD_U64LE;
    case DType::F32: return H5T_IEEE_F32LE;
    default: return H5T_STD_U8LE;
  }
}

// Object creation without modification times: libhdf5 stores four
// timestamps in the header of every object it tracks, 16 bytes × ~700
// objects in a sub1 container of the shipped model (0.005 bits per weight of
// the file), and they made two runs' outputs differ byte for byte.
Handle untimed(hid_t plist_class) {
  Handle plist(H5Pcreate(plist_class), H5Pclose);
  H5Pset_obj_track_times(plist.get(), 0);
  return plist;
}

// Creates every missing group on the way to `path`'s parent, untimed
// (libhdf5's own intermediate-group creation always uses timed defaults).
void create_parents(hid_t file, const std::string& path, const std::string& what) {
  Handle gcpl = untimed(H5P_GROUP_CREATE);
  for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    const std::string parent = path.substr(0, pos);
    if (H5Lexists(file, parent.c_str(), H5P_DEFAULT) > 0) continue;
    Handle group(H5Gcreate2(file, parent.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
    if (!group.valid()) fail("{}: cannot create group {}", what, parent);
  }
}

// Dataset creation for datasets that never get attributes (the parts of an
// encoded tensor, the tokenizer's bytes): their object headers are sized for
// what they hold. By default libhdf5 leaves room in each header for
// attributes to come, which in a sub1 container of the shipped model was
// 97 KB of 3.1 MB (0.05 bits per weight of the file).
Handle no_attribute_datasets() {
  Handle dcpl = untimed(H5P_DATASET_CREATE);
  H5Pset_dset_no_attrs_hint(dcpl.get(), 1);
  return dcpl;
}

Handle create_dataset(hid_t location, const std::string& path, hid_t type, const std::vector<int64_t>& shape,
                      std::span<const std::byte> bytes, const std::string& what, const std::string& tensor,
                      hid_t dcpl) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(int(dims.size()), dims.data(), nullptr),
               H5Sclose);
  Handle set(H5Dcreate2(location, path.c_str(), type, space.get(), H5P_DEFAULT, dcpl, H5P_DEFAULT), H5Dclose);
  if (!set.valid()) fail("{}: tensor '{}': cannot create dataset {}", what, tensor, path);
  if (!bytes.empty() && H5Dwrite(set.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) < 0)
    fail("{}: tensor '{}': write failed", what, tensor);
  return set;
}

void write_tensor_attributes(hid_t object, const TensorInfo& info, std::string_view hf_name, const std::string& what) {
  h5::write_string_attribute(object, "encoding", info.encoding, what);
  h5::write_int_array_attribute(object, "shape", info.shape, what);
  h5::write_string_attribute(object, "hf_name", std::string(hf_name), what);
}

std::optional<std::vector<int64_t>> dataset_dims(hid_t set) {
  Handle space(H5Dget_space(set), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) return std::nullopt;
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0) return std::nullopt;
  return std::vector<int64_t>(dims.begin(), dims.end());
}

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
    : output_(target, overwrite, AtomicOutput::Kind::File), config_(parse_model_config(config_json, target.string() + " (config)")) {
  h5::silence_errors();
  const std::string what = target.string();
  // Every allocation aligned to 8 bytes, the largest element size of any
  // part: small parts (a sub1 tensor's u32 block offsets, u64 counts) are
  // read in place through pointers of their element type, which must be
  // aligned. 64 (a cache line) cost 29 KB more padding in a sub1 container of
  // the shipped model (0.015 bits per weight of the file); moec's kernels load
  // mapped weights with unaligned loads.
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_alignment(fapl.get(), 1, kAlignment);
  // HDF5 1.8's file format: superblock 2 and object headers 2, whose
  // metadata carries checksums that libhdf5 verifies before parsing, so a
  // damaged header is an error instead of input to a parser that fuzzing
  // showed to read freed memory (docs/reliability.md). h5py reads it.
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_V18);
  Handle fcpl = untimed(H5P_FILE_CREATE);  // the root group's
  file_ = Handle(H5Fcreate(output_.temp_path().c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), H5Fclose);
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
  if (!provenance.quantization.is_null()) prov["quantization"] = provenance.quantization;
  h5::write_string_attribute(root, "provenance", prov.dump(), what);
  Handle gcpl = untimed(H5P_GROUP_CREATE);
  Handle group(H5Gcreate2(root, kTensorsGroup, H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
  if (!group.valid()) fail("{}: cannot create group {}", what, kTensorsGroup);
}

ContainerWriter::~ContainerWriter() = default;

namespace {
// The tokenizer files are stored deflated (zlib level 9, one chunk): they are
// read once through H5Dread, never mapped, and text compresses well — the
// shipped model's sentencepiece model from 61.6 KB to 25 KB (0.019 bits per
// weight of its sub1 file). Stored plainly when tiny or when this libhdf5
// lacks the filter. Readers get the bytes through H5Dread, which needs a
// libhdf5 with the filter for a deflated dataset (Debian's always has it).
Handle tokenizer_dataset_creation(hsize_t n) {
  Handle dcpl = no_attribute_datasets();
  constexpr hsize_t kMinDeflated = 4096;
  if (n >= kMinDeflated && H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
    H5Pset_chunk(dcpl.get(), 1, &n);
    H5Pset_deflate(dcpl.get(), 9);
  }
  return dcpl;
}

void write_bytes(hid_t file, const char* name, std::span<const std::byte> bytes, const std::string& what) {
  hsize_t n = bytes.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  Handle dcpl = tokenizer_dataset_creation(n);
  Handle set(H5Dcreate2(file, name, H5T_STD_U8LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
  if (!set.valid() || (n && H5Dwrite(set.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) < 0))
    fail("{}: cannot write {}", what, name);
}
}  // namespace

void ContainerWriter::write_tokenizer(std::span<const std::byte> model) {
  write_bytes(file_.get(), kTokenizerDataset, model, output_.target().string());
}

void ContainerWriter::write_tokenizer_json(std::span<const std::byte> json) {
  write_bytes(file_.get(), kTokenizerJsonDataset, json, output_.target().string());
}

void ContainerWriter::write_tokenizer_config(std::span<const std::byte> config) {
  write_bytes(file_.get(), kTokenizerConfigDataset, config, output_.target().string());
}

void ContainerWriter::write_tokenizers(const TokenizerFiles& files) {
  if (files.model) write_tokenizer(*files.model);
  if (files.json) write_tokenizer_json(*files.json);
  if (files.config) write_tokenizer_config(*files.config);
}

void ContainerWriter::write_dense(const TensorInfo& info, std::string_view hf_name, std::span<const std::byte> bytes) {
  const std::string what = output_.target().string();
  auto dtype = info.dense_dtype();
  if (!dtype || !dtype_is_float(*dtype))
    fail("{}: tensor '{}': encoding '{}' is not a dense float type", what, info.name, info.encoding);
  if (bytes.size() != info.numel() * dtype_size(*dtype))
    fail("{}: tensor '{}': {} bytes for shape [{}] in {}", what, info.name, bytes.size(), fmt::join(info.shape, ", "),
         info.encoding);
  const std::string path = container_path(info.key);
  create_parents(file_.get(), path, what);
  Handle dcpl = untimed(H5P_DATASET_CREATE);
  Handle set = create_dataset(file_.get(), path, storage_type(*dtype), info.shape, bytes, what, info.name, dcpl.get());
  write_tensor_attributes(set.get(), info, hf_name, what);
  ++written_;
}

void ContainerWriter::write_encoded(const TensorInfo& info, std::string_view hf_name,
                                    std::span<const std::span<const std::byte>> parts) {
  const std::string what = output_.target().string();
  const EncodingParts* layout = find_encoding(info.encoding);
  if (!layout) fail("{}: tensor '{}': unknown encoding '{}'", what, info.name, info.encoding);
  if (parts.size() != info.parts.size()) fail("{}: tensor '{}': {} part buffers for {} parts", what, info.name,
                                              parts.size(), info.parts.size());
  const std::string path = container_path(info.key);
  create_parents(file_.get(), path, what);
  Handle gcpl = untimed(H5P_GROUP_CREATE);
  Handle group(H5Gcreate2(file_.get(), path.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
  if (!group.valid()) fail("{}: tensor '{}': cannot create group {}", what, info.name, path);
  Handle dcpl = no_attribute_datasets();
  for (size_t i = 0; i < parts.size(); ++i) {
    const TensorPart& part = info.parts[i];
    if (parts[i].size() != part.nbytes())
      fail("{}: tensor '{}': part '{}' has {} bytes, its dims need {}", what, info.name, part.name, parts[i].size(),
           part.nbytes());
    create_dataset(group.get(), part.name, part_type(part.dtype), part.dims, parts[i], what, info.name, dcpl.get());
  }
  write_tensor_attributes(group.get(), info, hf_name, what);
  h5::write_string_attribute(group.get(), "format", info.format, what);
  ++written_;
}

void ContainerWriter::commit() {
  const size_t expected = expected_tensors(config_).size();
  if (written_ != expected)
    fail("{}: {} of {} tensors written; not finishing an incomplete container", output_.target().string(), written_,
         expected);
  if (H5Fflush(file_.get(), H5F_SCOPE_GLOBAL) < 0) fail("{}: flush failed", output_.temp_path().string());
  hid_t file = file_.release();
  if (H5Fclose(file) < 0) fail("{}: closing the HDF5 file failed", output_.temp_path().string());
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
  // Metadata without checksums (superblock 0/1: HDF5's 1.6 format) is not
  // parsed any further: moec writes checksummed metadata only.
  H5F_info2_t file_info{};
  if (H5Fget_info2(root, &file_info) < 0 || file_info.super.version < 2)
    fail("{}: not a moec container (HDF5 superblock version {} has no metadata checksums; moec writes 2 or later)",
         file, file_info.super.version);
  // The version first: version 1 stored strings in HDF5's global heap, whose
  // parser (libhdf5 1.10) can be made to loop forever by a damaged file
  // (found by fuzzing), so such files are not read at all.
  auto version = h5::read_int_attribute(root, "format_version");
  if (version == 1)
    fail("{}: container format version 1 (variable-length strings) is no longer read; write it again with this "
         "moec from its source (convert, quantize, merge)", file);
  if (h5::read_string_attribute(root, "moec_format") != kContainerMagic)
    fail("{}: HDF5 file is not a moec container (no moec_format=\"moec\" attribute)", file);
  if (!version) fail("{}: missing format_version", file);
  if (*version != kContainerVersion)
    fail("{}: container format version {} is not supported (this moec reads {})", file, *version,
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
  Handle object(H5Oopen(file_.get(), path.c_str(), H5P_DEFAULT), H5Oclose);
  if (!object.valid()) fail("{}: tensor '{}': cannot open {}", file, name, path);
  auto encoding = h5::read_string_attribute(object.get(), "encoding");
  if (!encoding) fail("{}: tensor '{}': missing the encoding attribute", file, name);
  auto shape = h5::read_int_array_attribute(object.get(), "shape");
  if (!shape) fail("{}: tensor '{}': missing the shape attribute", file, name);
  std::vector<int64_t> want = expected_shape(config_, key);
  if (*shape != want)
    fail("{}: tensor '{}': shape [{}] but the config needs [{}]", file, name, fmt::join(*shape, ", "),
         fmt::join(want, ", "));
  TensorInfo info{key, name, path, *encoding, want, 0, {}, {}};
  if (H5Iget_type(object.get()) == H5I_GROUP)
    open_encoded(info, object.get());
  else
    open_dense(info, object.get());
  tensors_.push_back(std::move(info));
}

// Where a dataset's nbytes lie in the mapped file; nullopt when HDF5 did not
// store it contiguously (chunked or filtered by another tool).
std::optional<uint64_t> ContainerReader::mapped_offset(hid_t set, uint64_t nbytes, const std::string& what) const {
  haddr_t offset = H5Dget_offset(set);
  if (offset == HADDR_UNDEF) {
    // Chunked or filtered (another tool's file): read() will allocate nbytes,
    // so a few stored bytes may not claim gigabytes (io/limits.h).
    const uint64_t stored = H5Dget_storage_size(set);
    if (nbytes > 0 && stored == 0) fail("{}: dataset has no data written", what);
    if (nbytes / limits::kMaxInflation > stored)
      fail("{}: {} bytes stored for {} bytes of data (more than {}:1); not a real compressed tensor", what, stored,
           nbytes, limits::kMaxInflation);
    return std::nullopt;
  }
  if (offset > mapping_.size() || nbytes > mapping_.size() - offset)
    fail("{}: data at offset {} runs past the end of the file; truncated?", what, offset);
  return offset;
}

void ContainerReader::open_dense(TensorInfo& info, hid_t set) {
  const std::string what = fmt::format("{}: tensor '{}'", path_.string(), info.name);
  auto dtype = dtype_from_encoding(info.encoding);
  if (!dtype || !dtype_is_float(*dtype)) fail("{}: unknown encoding '{}'", what, info.encoding);
  if (H5Iget_type(set) != H5I_DATASET) fail("{}: {} is not a dataset", what, info.stored_name);
  Handle type(H5Dget_type(set), H5Tclose);
  if (!same_type(type.get(), storage_type(*dtype)))
    fail("{}: stored element type does not match encoding '{}'", what, info.encoding);
  if (dataset_dims(set) != info.shape) fail("{}: dataset extent does not match its shape attribute", what);
  info.nbytes = info.numel() * dtype_size(*dtype);
  if (auto offset = mapped_offset(set, info.nbytes, what)) offsets_[info.key] = {*offset};
}

void ContainerReader::open_encoded(TensorInfo& info, hid_t group) {
  const std::string what = fmt::format("{}: tensor '{}'", path_.string(), info.name);
  const EncodingParts* layout = find_encoding(info.encoding);
  if (!layout) fail("{}: unknown encoding '{}'", what, info.encoding);
  auto format = h5::read_string_attribute(group, "format");
  if (!format) fail("{}: missing the format attribute", what);
  info.format = *format;
  std::vector<uint64_t> offsets;
  for (const auto& [part_name, dtype, per_row] : layout->parts) {
    const std::string part(part_name);
    if (H5Lexists(group, part.c_str(), H5P_DEFAULT) <= 0) fail("{}: missing its '{}' array", what, part);
    Handle set(H5Dopen2(group, part.c_str(), H5P_DEFAULT), H5Dclose);
    if (!set.valid()) fail("{}: '{}' is not a dataset", what, part);
    Handle type(H5Dget_type(set.get()), H5Tclose);
    if (!same_type(type.get(), part_type(dtype)))
      fail("{}: '{}' must be {} but has another element type", what, part, dtype_name(dtype));
    auto dims = dataset_dims(set.get());
    if (per_row && (!dims || dims->size() != 2 || (*dims)[0] != info.shape[0]))
      fail("{}: '{}' must have {} rows (one per weight row)", what, part, info.shape[0]);
    if (!per_row && (!dims || dims->size() != 1)) fail("{}: '{}' must be a 1-D array", what, part);
    TensorPart p{part, dtype, *dims};
    auto offset = mapped_offset(set.get(), p.nbytes(), what + " '" + part + "'");
    if (!offset) fail("{}: '{}' is not stored contiguously", what, part);
    offsets.push_back(*offset);
    info.nbytes += p.nbytes();
    if (info.encoding == "sub1" && part == "trit_counts" && p.nbytes() == 24) {
      std::array<uint64_t, 3> counts;
      std::memcpy(counts.data(), mapping_.bytes().data() + *offset, sizeof counts);
      sub1_dictionaries_.insert(counts);
      if (sub1_dictionaries_.size() > limits::kMaxSub1DictionariesPerFile)
        fail("{}: more than {} distinct sub1 dictionaries (trit_counts) in one file; moec writes one per model",
             what, limits::kMaxSub1DictionariesPerFile);
    }
    info.parts.push_back(std::move(p));
  }
  offsets_[info.key] = std::move(offsets);
}

TensorData ContainerReader::read(const TensorKey& key) const {
  const TensorInfo& meta = info(key);
  auto it = offsets_.find(key);
  // moec aligns every object to 8 bytes; another writer's file may not,
  // and then TensorData::mapped copies the misaligned arrays.
  if (it != offsets_.end() && meta.encoded()) {
    std::vector<std::span<const std::byte>> parts;
    for (size_t i = 0; i < meta.parts.size(); ++i)
      parts.push_back(mapping_.bytes().subspan(it->second[i], meta.parts[i].nbytes()));
    return TensorData::mapped(meta, std::move(parts));
  }
  if (it != offsets_.end())
    return TensorData::mapped(meta, mapping_.bytes().subspan(it->second[0], meta.nbytes),
                              dtype_size(*meta.dense_dtype()));
  // Chunked or filtered datasets (written by other tools) cannot be mapped.
  std::vector<std::byte> buffer(meta.nbytes);
  Handle set(H5Dopen2(file_.get(), meta.stored_name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!set.valid() || (meta.nbytes && H5Dread(set.get(), storage_type(*meta.dense_dtype()), H5S_ALL, H5S_ALL,
                                               H5P_DEFAULT, buffer.data()) < 0))
    fail("{}: tensor '{}': read failed", path_.string(), meta.name);
  return TensorData(meta, std::move(buffer));
}

namespace {
std::optional<std::vector<std::byte>> read_bytes(hid_t file, const char* name, const std::string& what) {
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0) return std::nullopt;
  Handle set(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose);
  Handle space(H5Dget_space(set.get()), H5Sclose);
  hssize_t n = set.valid() ? H5Sget_simple_extent_npoints(space.get()) : -1;
  if (n < 0) fail("{}: {} is unreadable", what, name);
  if (uint64_t(n) > limits::kMaxTokenizerBytes || uint64_t(n) / limits::kMaxInflation > H5Dget_storage_size(set.get()))
    fail("{}: {} claims {} bytes (limit {}, or stored bytes × {})", what, name, n, limits::kMaxTokenizerBytes,
         limits::kMaxInflation);
  std::vector<std::byte> bytes(static_cast<size_t>(n));
  if (n && H5Dread(set.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) < 0)
    fail("{}: {} read failed", what, name);
  return bytes;
}
}  // namespace

std::optional<std::vector<std::byte>> ContainerReader::tokenizer_model() const {
  return read_bytes(file_.get(), kTokenizerDataset, path_.string());
}

std::optional<std::vector<std::byte>> ContainerReader::tokenizer_json() const {
  return read_bytes(file_.get(), kTokenizerJsonDataset, path_.string());
}

std::optional<std::vector<std::byte>> ContainerReader::tokenizer_config() const {
  return read_bytes(file_.get(), kTokenizerConfigDataset, path_.string());
}

}  // namespace moec
