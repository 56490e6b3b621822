// `moec bench sub1 MODEL.h5`: what the sub-1-bit Tunstall code (quant/tunstall.h)
// would cost on a container's ternary experts, next to the order-0 entropy of
// their pair symbols, with the dictionary built per model, per layer or per
// tensor (its own bytes counted), with and without the per-row scales.
#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace moec {

nlohmann::ordered_json run_sub1_bench(const std::filesystem::path& model);
std::string format_sub1_bench(const nlohmann::ordered_json& result);

}  // namespace moec
