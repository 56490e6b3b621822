// The student's training pass against PyTorch's float64 autograd, and the
// `moec distill` stage end to end.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "distill/adamw.h"
#include "distill/student.h"
#include "distill/student_pass.h"
#include "io/checkpoint.h"
#include "model/thread_pool.h"
#include "tests/reference.h"
#include "tests/test_paths.h"

using namespace moec;
using namespace moec::distill;
namespace fs = std::filesystem;

TEST_CASE("distill: student gradients equal the float64 autograd reference", "[distill][reference]") {
  const fs::path dir = test::fixtures_dir() / "tiny-mistral-student";
  const fs::path ref = test::fixtures_dir() / "reference" / "tiny-mistral-student.grad.h5";
  if (!fs::exists(dir / "config.json") || !fs::exists(ref)) {
    WARN("tiny-mistral-student and its gradient reference need ../shared/fixtures; skipped");
    return;
  }
  auto source = open_checkpoint(dir);
  Student student = Student::from_dense(*source);
  const auto ids = test::read_reference_ints(ref, "ids");
  REQUIRE(ids.dims == std::vector<size_t>{2, 128});
  ThreadPool pool(2);
  StudentPass pass(student, pool, 2, 128);
  const LossSums sums = pass.run(ids.values, nullptr, {}, true);
  const double want = test::read_reference_floats(ref, "loss").values.at(0);
  CHECK(sums.rows == 2 * 127);
  CHECK(std::abs(sums.loss / double(sums.rows) / want - 1) < 1e-5);
  for (const Parameter& p : student.parameters()) {
    INFO(p.name);
    const auto grad = test::read_reference_floats(ref, "grad/" + p.name);
    REQUIRE(grad.values.size() == p.grad.size());
    double diff = 0, norm = 0;
    for (size_t i = 0; i < p.grad.size(); ++i) {
      diff += std::pow(double(p.grad[i]) - grad.values[i], 2);
      norm += std::pow(double(grad.values[i]), 2);
    }
    const double relative = std::sqrt(diff / norm);
    INFO("relative error " << relative);
    CHECK(relative <= 1e-3);
  }
}
