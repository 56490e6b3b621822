// The decoding logic of the `sub1` encoding, shared by the CPU reference,
// the CPU kernels and the CUDA kernels (everything here is __host__
// __device__ and free of the standard library, so tests on the CPU check
// the very code the GPU runs).
//
// A sub1 matrix [rows, cols] is coded in blocks of kSub1BlockRows rows. A
// block's trits, row after row, form one stream (so a codeword may run from
// the end of one row into the next); the stream is parsed into codewords of
// a Tunstall dictionary (quant/tunstall.h). The decoding table holds two
// 64-bit masks per codeword, side by side so one cache line serves a
// codeword (the table is 1 MiB and read at random): bit i of low / high
// says trit i is the row's low / high level, neither bit means zero. A
// codeword of L < 64 trits also has bit L set in both masks: its end marker
// (both bits never mean a trit), so L = countr_zero(low & high).
//
// Weight (r, c) = level(trit): trit 0 -> -sub1_level(levels[r][0]),
// 1 -> 0, 2 -> +sub1_level(levels[r][1]).
#pragma once
#include <cstdint>

#include "io/dtype.h"
#include "io/host_device.h"

namespace moec {

constexpr int64_t kSub1BlockRows = 16;
constexpr int kSub1MaxWordTrits = 64;

struct Sub1Codebook {
  const uint64_t* masks = nullptr;  // [size][2]: low, high (with the end marker)
  uint32_t size = 0;                // codewords
};

MOEC_HD int sub1_word_length(const Sub1Codebook& cb, unsigned word) {
  const uint64_t both = cb.masks[2 * word] & cb.masks[2 * word + 1];
  if (both == 0) return 64;
#if defined(__CUDA_ARCH__)
  return __ffsll((long long)both) - 1;
#else
  return __builtin_ctzll(both);
#endif
}

// Trit i < the word's length.
MOEC_HD int sub1_word_trit(const Sub1Codebook& cb, unsigned word, int i) {
  return 1 + int((cb.masks[2 * word + 1] >> i) & 1u) - int((cb.masks[2 * word] >> i) & 1u);
}

// Decodes codewords [0, n_words) into the first n trits of out. A stream that
// covers fewer than n trits (only a malformed file's) leaves the rest zero
// (trit 1); nothing beyond words[n_words) or out[n) is ever touched.
MOEC_HD void sub1_decode_stream(const Sub1Codebook& cb, const uint16_t* words, int64_t n_words, int64_t n,
                                uint8_t* out) {
  int64_t pos = 0;
  for (int64_t k = 0; k < n_words && pos < n; ++k) {
    const unsigned w = words[k];
    const int len = sub1_word_length(cb, w);
    for (int i = 0; i < len && pos < n; ++i) out[pos++] = uint8_t(sub1_word_trit(cb, w, i));
  }
  for (; pos < n; ++pos) out[pos] = 1;
}

// Level code -> magnitude: 0 -> 0; k in 1..255 -> scale · 2^((k − 255)/16),
// i.e. 16 steps per octave (±2.2% at worst) over 16 octaves below the
// tensor's largest |weight| `scale`. Exact: one f32 multiply and a power-of-
// two scaling, identical on every device.
MOEC_HD float sub1_level(unsigned code, float scale) {
  if (code == 0) return 0.0f;
  const unsigned n = 255u - code;
  float f = 1.0f;  // × 2^(-(n >> 4)) below: an exact power of two, built from its bits
  switch (n & 15u) {  // 2^(-r/16)
    case 1: f = 0.957603281f; break;
    case 2: f = 0.917004043f; break;
    case 3: f = 0.87812608f; break;
    case 4: f = 0.840896415f; break;
    case 5: f = 0.805245166f; break;
    case 6: f = 0.771105413f; break;
    case 7: f = 0.738413073f; break;
    case 8: f = 0.707106781f; break;
    case 9: f = 0.677127773f; break;
    case 10: f = 0.648419777f; break;
    case 11: f = 0.620928906f; break;
    case 12: f = 0.594603558f; break;
    case 13: f = 0.569394317f; break;
    case 14: f = 0.545253866f; break;
    case 15: f = 0.522136891f; break;
    default: break;
  }
  return scale * f * f32_from_bits((127u - (n >> 4)) << 23);
}

}  // namespace moec
