// The architecture fixtures of ../shared/fixtures/arch (Qwen2-MoE, Qwen3-MoE,
// OLMoE). They are not copied into the repository: a missing one is named in
// a warning and skipped, never passed silently.
#pragma once
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "tests/test_paths.h"

namespace moec::test {

inline std::vector<std::pair<std::string, std::filesystem::path>> arch_fixtures() {
  std::vector<std::pair<std::string, std::filesystem::path>> present;
  for (const char* name : {"tiny-qwen2moe", "tiny-qwen3moe", "tiny-olmoe"}) {
    const std::filesystem::path dir = fixtures_dir() / "arch" / name;
    if (std::filesystem::exists(dir / "config.json"))
      present.emplace_back(name, dir);
    else
      WARN(name << " needs ../shared/fixtures/arch; skipped");
  }
  return present;
}

}  // namespace moec::test
