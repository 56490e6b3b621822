// The input format of the tensor-view fuzz target: one stored tensor as a
// checkpoint would hand it to the runtime, serialized so that the seed
// generator can write real tensors (taken from real containers) and libFuzzer
// can mutate every field that decides decoding:
//   u8  encoding length, encoding ("bf16", "affine", "ternary", "sub1", ...)
//   u8  format length, format ("q4g128", "ternary-qmoe", "sub1", ...)
//   u16 rows, u16 cols                      (little-endian)
//   u8  number of parts, then per part:
//       u8 name length, name ("codes", "scales", "zeros", "blocks", ...)
//       u32 byte count, the bytes           (a dense tensor: one part "data")
// Missing bytes at the end read as zeros, so every input parses.
#pragma once
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace moec::fuzz {

struct TensorRecord {
  std::string encoding, format;
  int64_t rows = 0, cols = 0;
  struct Part {
    std::string name;
    std::vector<uint8_t> bytes;
  };
  std::vector<Part> parts;
};

class RecordReader {
 public:
  explicit RecordReader(std::span<const uint8_t> in) : in_(in) {}
  uint64_t uint(int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t(next()) << (8 * i);
    return v;
  }
  std::string string() {
    std::string s(uint(1), '\0');
    for (char& c : s) c = char(next());
    return s;
  }
  std::vector<uint8_t> bytes(size_t n) {
    n = std::min(n, in_.size() - pos_);  // a count past the end takes what is left
    std::vector<uint8_t> out(in_.begin() + long(pos_), in_.begin() + long(pos_ + n));
    pos_ += n;
    return out;
  }

 private:
  uint8_t next() { return pos_ < in_.size() ? in_[pos_++] : 0; }
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
};

inline TensorRecord read_record(std::span<const uint8_t> input) {
  RecordReader in(input);
  TensorRecord r;
  r.encoding = in.string();
  r.format = in.string();
  r.rows = int64_t(in.uint(2));
  r.cols = int64_t(in.uint(2));
  const size_t n_parts = in.uint(1) % 8;
  for (size_t i = 0; i < n_parts; ++i) {
    TensorRecord::Part p;
    p.name = in.string();
    p.bytes = in.bytes(in.uint(4));
    r.parts.push_back(std::move(p));
  }
  return r;
}

inline std::vector<uint8_t> write_record(const TensorRecord& r) {
  std::vector<uint8_t> out;
  auto put = [&](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(uint8_t(v >> (8 * i)));
  };
  auto put_string = [&](const std::string& s) {
    put(s.size(), 1);
    out.insert(out.end(), s.begin(), s.end());
  };
  put_string(r.encoding);
  put_string(r.format);
  put(uint64_t(r.rows), 2);
  put(uint64_t(r.cols), 2);
  put(r.parts.size(), 1);
  for (const auto& p : r.parts) {
    put_string(p.name);
    put(p.bytes.size(), 4);
    out.insert(out.end(), p.bytes.begin(), p.bytes.end());
  }
  return out;
}

}  // namespace moec::fuzz
