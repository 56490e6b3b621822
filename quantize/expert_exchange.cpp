#include "quantize/expert_exchange.h"

#include <cstring>
#include <type_traits>

#include "io/error.h"

namespace moec {

namespace {

static_assert(std::is_trivially_copyable_v<QuantFormat>);

class Writer {
 public:
  template <typename T>
  void value(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    raw(&v, sizeof v);
  }
  template <typename T>
  void array(const std::vector<T>& v) {
    value(uint64_t(v.size()));
    raw(v.data(), v.size() * sizeof(T));
  }
  void text(const std::string& s) {
    value(uint64_t(s.size()));
    raw(s.data(), s.size());
  }
  std::vector<std::byte> bytes;

 private:
  void raw(const void* p, size_t n) {
    const size_t at = bytes.size();
    bytes.resize(at + n);
    if (n) std::memcpy(bytes.data() + at, p, n);
  }
};

class Reader {
 public:
  explicit Reader(const std::vector<std::byte>& bytes) : bytes_(bytes) {}
  template <typename T>
  T value() {
    T v;
    raw(&v, sizeof v);
    return v;
  }
  template <typename T>
  std::vector<T> array() {
    std::vector<T> v(size_t(count(sizeof(T))));
    raw(v.data(), v.size() * sizeof(T));
    return v;
  }
  std::string text() {
    std::string s(size_t(count(1)), '\0');
    raw(s.data(), s.size());
    return s;
  }

 private:
  uint64_t count(size_t element) {
    const uint64_t n = value<uint64_t>();
    if (n > (bytes_.size() - at_) / element) fail("expert exchange: a message is shorter than it says");
    return n;
  }
  void raw(void* p, size_t n) {
    if (n > bytes_.size() - at_) fail("expert exchange: a message is shorter than it says");
    if (n) std::memcpy(p, bytes_.data() + at_, n);
    at_ += n;
  }
  const std::vector<std::byte>& bytes_;
  size_t at_ = 0;
};

void write_matrix(Writer& w, const QuantizedMatrix& m) {
  w.value(m.format);
  w.value(m.rows);
  w.value(m.cols);
  w.array(m.codes);
  w.array(m.scales);
  w.array(m.zeros);
}

QuantizedMatrix read_matrix(Reader& r) {
  QuantizedMatrix m;
  m.format = r.value<QuantFormat>();
  m.rows = r.value<int64_t>();
  m.cols = r.value<int64_t>();
  m.codes = r.array<uint8_t>();
  m.scales = r.array<uint16_t>();
  m.zeros = r.array<uint8_t>();
  return m;
}

}  // namespace

std::vector<std::byte> serialize(const ExpertResult& r) {
  Writer w;
  for (const QuantizedMatrix* m : {&r.w1, &r.w2, &r.w3}) write_matrix(w, *m);
  w.value(uint64_t(r.fallbacks.size()));
  for (const std::string& f : r.fallbacks) w.text(f);
  w.value(r.hessian_seconds);
  w.value(r.gptq_seconds);
  return std::move(w.bytes);
}

ExpertResult deserialize_expert_result(const std::vector<std::byte>& bytes) {
  Reader r(bytes);
  ExpertResult e;
  e.w1 = read_matrix(r);
  e.w2 = read_matrix(r);
  e.w3 = read_matrix(r);
  const uint64_t notes = r.value<uint64_t>();
  for (uint64_t i = 0; i < notes; ++i) e.fallbacks.push_back(r.text());
  e.hessian_seconds = r.value<double>();
  e.gptq_seconds = r.value<double>();
  return e;
}

void share_expert_results(std::vector<ExpertResult>& results, MpiWorld& world) {
  if (world.size() == 1) return;
  for (size_t e = 0; e < results.size(); ++e) {
    const int owner = int(e % size_t(world.size()));
    std::vector<std::byte> bytes;
    if (world.rank() == owner) bytes = serialize(results[e]);
    world.broadcast(bytes, owner);
    if (world.rank() != owner) results[e] = deserialize_expert_result(bytes);
  }
}

void share_batches(std::vector<float>& x, size_t slice, MpiWorld& world) {
  if (world.size() == 1) return;
  std::vector<std::byte> bytes;
  for (size_t b = 0, at = 0; at < x.size(); ++b, at += slice) {
    const size_t n = std::min(slice, x.size() - at);
    const int owner = int(b % size_t(world.size()));
    if (world.rank() == owner) {
      bytes.resize(n * sizeof(float));
      std::memcpy(bytes.data(), &x[at], bytes.size());
    }
    world.broadcast(bytes, owner);
    if (bytes.size() != n * sizeof(float)) fail("expert exchange: batch {} arrived with {} bytes", b, bytes.size());
    if (world.rank() != owner) std::memcpy(&x[at], bytes.data(), bytes.size());
  }
}

}  // namespace moec
