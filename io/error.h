// The one exception type of moec. Its message is a single line that names the
// file (and the tensor, where there is one) so a user can act on it.
#pragma once
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace moec {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws moec::Error with a formatted message: fail("{}: bad thing", path).
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace moec
