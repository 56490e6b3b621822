// `moec bench sub1 MODEL.h5`: what the sub-1-bit Tunstall code (quant/tunstall.h)
// costs on a container's ternary (or sub1) experts, next to the order-0
// entropy of their pair symbols and QMoE's fixed dictionary, with the
// dictionary built per model, per layer or per tensor (its own bytes
// counted), with f16 or 8-bit per-row levels.
#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace moec {

nlohmann::ordered_json run_sub1_bench(const std::filesystem::path& model);
std::string format_sub1_bench(const nlohmann::ordered_json& result);

}  // namespace moec
