// Which SIMD instruction set the kernels use, chosen once per process.
//
// moec is built for plain x86-64 (SSE2) and carries AVX2+FMA and AVX-512
// versions of its hot kernels, compiled with per-function target attributes
// or per-file flags; at run time the best level this CPU supports is used,
// unless MOEC_ISA=portable|avx2|avx512 asks for another (refused with an
// error when the CPU lacks it). Everything that dispatches reads
// active_isa(), so one setting moves every kernel together.
//
// Levels:
//   portable  plain C++ (SSE2 on x86-64, whatever the compiler targets elsewhere)
//   avx2      AVX2 + FMA + F16C + BMI1/2 (Haswell, Zen 1 and later)
//   avx512    AVX2's set + AVX-512 F/BW/DQ/VL (Skylake-SP, Ice Lake, Zen 4)
#pragma once
#include <optional>
#include <string_view>
#include <vector>

namespace moec {

enum class Isa { Portable, Avx2, Avx512 };

const char* isa_name(Isa isa);
std::optional<Isa> isa_from_name(std::string_view name);
bool isa_supported(Isa isa);   // this CPU (and this build) can run it
std::vector<Isa> supported_isas();  // ascending: portable first
Isa best_isa();

// The level every kernel uses: MOEC_ISA if set (checked on first use: an
// unknown name or a level the CPU lacks throws moec::Error), else best_isa().
Isa active_isa();
// Forces a level for the rest of the process (benchmarks, tests); throws
// moec::Error when the CPU lacks it. Not for use while kernels run.
void set_active_isa(Isa isa);

}  // namespace moec
