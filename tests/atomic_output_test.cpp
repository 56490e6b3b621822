#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "io/atomic_output.h"
#include "io/error.h"
#include "tests/test_paths.h"

using namespace moec;
using namespace moec::test;

namespace {
// The pid of a process that has exited (a fork's child, reaped).
pid_t dead_pid() {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}
}  // namespace

TEST_CASE("atomic output: a killed run's temporary is removed by the next run for that target", "[io]") {
  TempDir dir;
  const fs::path target = dir / "out.h5";
  const fs::path stale = dir / ("out.h5.moec-tmp-" + std::to_string(dead_pid()));
  const fs::path other = dir / ("other.h5.moec-tmp-" + std::to_string(dead_pid()));
  const fs::path live = dir / ("out.h5.moec-tmp-" + std::to_string(::getppid()));  // a live process's
  for (const auto& p : {stale, other, live}) write_file(p, "partial");
  {
    AtomicOutput out(target, false, AtomicOutput::Kind::File);
    CHECK_FALSE(fs::exists(stale));
    CHECK(fs::exists(other));  // another target's: not ours to touch
    CHECK(fs::exists(live));   // its writer may still be running
    write_file(out.temp_path(), "complete");
    out.commit();
  }
  CHECK(read_file(target) == "complete");
}

TEST_CASE("atomic output: a folder moved aside by a killed replacement is put back", "[io]") {
  TempDir dir;
  const fs::path target = dir / "merged";
  const fs::path aside = dir / ("merged.moec-old-" + std::to_string(dead_pid()));
  fs::create_directory(aside);
  write_file(aside / "config.json", "{}");
  // Without --force the run stops at once, but only after recovering the folder.
  CHECK_THROWS_WITH(AtomicOutput(target, false, AtomicOutput::Kind::Directory), Catch::Contains("already exists"));
  CHECK(read_file(target / "config.json") == "{}");
  CHECK_FALSE(fs::exists(aside));
}

TEST_CASE("atomic output: a folder a killed run was deleting is removed, never put back", "[io]") {
  TempDir dir;
  const fs::path target = dir / "merged";
  const fs::path deleting = dir / ("merged.moec-del-" + std::to_string(dead_pid()));
  fs::create_directory(deleting);
  write_file(deleting / "model.safetensors", "half");  // config.json already deleted
  {
    AtomicOutput out(target, false, AtomicOutput::Kind::Directory);
    CHECK_FALSE(fs::exists(deleting));
    CHECK_FALSE(fs::exists(target));
  }
  CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 0);
  // one this process's pid left (pids repeat in containers): removed too, so the next replacement can use the name
  const fs::path own = dir / ("merged.moec-del-" + std::to_string(::getpid()));
  fs::create_directory(own);
  write_file(own / "model.safetensors", "half");
  { AtomicOutput out(target, false, AtomicOutput::Kind::Directory); }
  CHECK_FALSE(fs::exists(own));
}

TEST_CASE("atomic output: a whole moved-aside folder is dropped when a newer output stands", "[io]") {
  TempDir dir;
  const fs::path target = dir / "merged";
  fs::create_directory(target);
  write_file(target / "config.json", "new");
  const fs::path aside = dir / ("merged.moec-old-" + std::to_string(dead_pid()));
  fs::create_directory(aside);
  write_file(aside / "config.json", "old");
  { AtomicOutput out(target, true, AtomicOutput::Kind::Directory); }
  CHECK(read_file(target / "config.json") == "new");
  CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 1);
}

TEST_CASE("atomic output: replacing a folder commits the new one and drops the old", "[io]") {
  TempDir dir;
  const fs::path target = dir / "merged";
  fs::create_directory(target);
  write_file(target / "old.txt", "old");
  {
    AtomicOutput out(target, true, AtomicOutput::Kind::Directory);
    out.make_directory();
    write_file(out.temp_path() / "new.txt", "new");
    out.commit();
  }
  CHECK(fs::exists(target / "new.txt"));
  CHECK_FALSE(fs::exists(target / "old.txt"));
  CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 1);
}
