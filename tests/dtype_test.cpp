#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "io/dtype.h"

using namespace moec;

TEST_CASE("dtype names, encodings and sizes round trip", "[dtype]") {
  for (DType d : {DType::F32, DType::F16, DType::BF16, DType::I8, DType::U8, DType::U16, DType::I32, DType::I64, DType::U32, DType::U64}) {
    REQUIRE(dtype_from_name(dtype_name(d)) == d);
    REQUIRE(dtype_from_encoding(dtype_encoding(d)) == d);
  }
  CHECK(dtype_size(DType::BF16) == 2);
  CHECK(dtype_size(DType::I64) == 8);
  CHECK_FALSE(dtype_from_name("F8_E4M3"));
  CHECK_FALSE(dtype_from_name("bf16"));  // safetensors names are upper case
}

TEST_CASE("f16 to f32 matches the compiler's _Float16 for every bit pattern", "[dtype]") {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    _Float16 h;
    uint16_t b = uint16_t(bits);
    std::memcpy(&h, &b, 2);
    float want = static_cast<float>(h);
    float got = f16_to_f32(b);
    if (std::isnan(want)) {
      REQUIRE(std::isnan(got));
    } else {
      REQUIRE(f32_to_bits(got) == f32_to_bits(want));
    }
  }
}

TEST_CASE("bf16 widening is exact and narrowing rounds to nearest even", "[dtype]") {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    float f = bf16_to_f32(uint16_t(bits));
    REQUIRE(f32_to_bits(f) == bits << 16);
    if (!std::isnan(f)) REQUIRE(f32_to_bf16(f) == bits);
  }
  CHECK(f32_to_bf16(f32_from_bits(0x3f808000u)) == 0x3f80);  // tie, even stays
  CHECK(f32_to_bf16(f32_from_bits(0x3f818000u)) == 0x3f82);  // tie, odd rounds up
  CHECK(f32_to_bf16(f32_from_bits(0x3f808001u)) == 0x3f81);  // above half
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
}

TEST_CASE("vectorized conversion equals the scalar one, any length", "[dtype]") {
  std::vector<uint16_t> src(1000);
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint16_t(i * 2654435761u >> 7);
  for (size_t n : {0, 1, 7, 8, 15, 16, 17, 33, 1000}) {
    std::vector<float> bf(n), hf(n);
    convert_to_f32(DType::BF16, src.data(), bf.data(), n);
    convert_to_f32(DType::F16, src.data(), hf.data(), n);
    for (size_t i = 0; i < n; ++i) {
      REQUIRE(f32_to_bits(bf[i]) == f32_to_bits(bf16_to_f32(src[i])));
      float want = f16_to_f32(src[i]);
      if (std::isnan(want))
        REQUIRE(std::isnan(hf[i]));
      else
        REQUIRE(f32_to_bits(hf[i]) == f32_to_bits(want));
    }
  }
  std::vector<int32_t> ints{-3, 0, 7};
  std::vector<float> out(3);
  convert_to_f32(DType::I32, ints.data(), out.data(), 3);
  CHECK(out == std::vector<float>{-3.f, 0.f, 7.f});
}

TEST_CASE("f32 to f16 rounds exactly as the compiler's _Float16", "[dtype]") {
  auto check = [](uint32_t bits) {
    float f = f32_from_bits(bits);
    _Float16 h = static_cast<_Float16>(f);
    uint16_t want;
    std::memcpy(&want, &h, 2);
    if (std::isnan(f))
      REQUIRE(std::isnan(f16_to_f32(f32_to_f16(f))));
    else
      REQUIRE(f32_to_f16(f) == want);
  };
  for (uint32_t bits = 0; bits < 65536; ++bits) check(uint32_t(f32_to_bits(f16_to_f32(uint16_t(bits)))));
  uint32_t state = 1;
  for (int i = 0; i < 2000000; ++i) {
    state = state * 1664525u + 1013904223u;
    check(state);
    check((state & 0x80001fffu) | 0x33000000u + ((state >> 13) % 0x14800000u));  // near the f16 range
  }
}
