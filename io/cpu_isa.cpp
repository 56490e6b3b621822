#include "io/cpu_isa.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <atomic>
#include <cstdlib>
#include <string>

#include "io/error.h"

namespace moec {
namespace {

#if defined(__x86_64__) || defined(__i386__)
// F16C, BMI1 and BMI2 straight from CPUID: clang's __builtin_cpu_supports
// does not know every feature name GCC's does.
bool cpu_has_f16c_bmi() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_F16C)) return false;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return (b & bit_BMI) && (b & bit_BMI2);
}
#endif

bool cpu_has(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  switch (isa) {
    case Isa::Portable: return true;
    case Isa::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c_bmi();
    case Isa::Avx512:
      return cpu_has(Isa::Avx2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  }
  return false;
#else
  return isa == Isa::Portable;
#endif
}

Isa from_environment() {
  const char* value = std::getenv("MOEC_ISA");
  if (value == nullptr || *value == '\0') return best_isa();
  const auto isa = isa_from_name(value);
  if (!isa) fail("MOEC_ISA={}: unknown instruction set (portable, avx2, avx512)", value);
  if (!isa_supported(*isa)) fail("MOEC_ISA={}: this CPU does not support it (best here: {})", value, isa_name(best_isa()));
  return *isa;
}

// -1: not chosen yet.
std::atomic<int> g_active{-1};

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Portable: return "portable";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

std::optional<Isa> isa_from_name(std::string_view name) {
  for (Isa isa : {Isa::Portable, Isa::Avx2, Isa::Avx512})
    if (name == isa_name(isa)) return isa;
  return std::nullopt;
}

bool isa_supported(Isa isa) {
  static const bool has[3] = {cpu_has(Isa::Portable), cpu_has(Isa::Avx2), cpu_has(Isa::Avx512)};
  return has[static_cast<int>(isa)];
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::Portable, Isa::Avx2, Isa::Avx512})
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

Isa best_isa() {
  return isa_supported(Isa::Avx512) ? Isa::Avx512 : isa_supported(Isa::Avx2) ? Isa::Avx2 : Isa::Portable;
}

Isa active_isa() {
  int v = g_active.load(std::memory_order_relaxed);
  if (v < 0) {
    v = static_cast<int>(from_environment());
    g_active.store(v, std::memory_order_relaxed);
  }
  return static_cast<Isa>(v);
}

void set_active_isa(Isa isa) {
  if (!isa_supported(isa)) fail("instruction set {}: this CPU does not support it (best here: {})", isa_name(isa),
                                isa_name(best_isa()));
  g_active.store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace moec
