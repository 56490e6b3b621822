#include "io/mpi_world.h"

#include <cstdlib>
#include <string>

#include "io/error.h"

#if defined(MOEC_HAVE_MPI)
#include <mpi.h>
#endif

namespace moec {

int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* value = std::getenv(name)) {
      const int n = std::atoi(value);
      if (n > 0) return n;
    }
  return 1;
}

bool MpiWorld::built_with_mpi() {
#if defined(MOEC_HAVE_MPI)
  return true;
#else
  return false;
#endif
}

MpiWorld& MpiWorld::get() {
  static MpiWorld world;
  return world;
}

MpiWorld::MpiWorld() {
  const int launched = launcher_world_size();
  if (launched <= 1) return;
#if defined(MOEC_HAVE_MPI)
  int ready = 0;
  MPI_Initialized(&ready);
  if (!ready) {
    MPI_Init(nullptr, nullptr);
    initialized_ = true;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
#else
  fail("started by an MPI launcher with {} processes, but this moec was built without MPI (install Debian's "
       "libopenmpi-dev and rebuild; cmake says \"moec: MPI ON\")",
       launched);
#endif
}

MpiWorld::~MpiWorld() {
#if defined(MOEC_HAVE_MPI)
  if (initialized_) MPI_Finalize();
#endif
}

void MpiWorld::broadcast(std::vector<std::byte>& bytes, int root) {
  if (size_ == 1) return;
#if defined(MOEC_HAVE_MPI)
  unsigned long long n = bytes.size();
  MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, root, MPI_COMM_WORLD);
  bytes.resize(size_t(n));
  // MPI counts are int: send in pieces of at most 1 GiB.
  constexpr size_t kPiece = size_t{1} << 30;
  for (size_t at = 0; at < bytes.size(); at += kPiece)
    MPI_Bcast(bytes.data() + at, int(std::min(kPiece, bytes.size() - at)), MPI_BYTE, root, MPI_COMM_WORLD);
#endif
}

void MpiWorld::abort(int code) {
#if defined(MOEC_HAVE_MPI)
  if (size_ > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

}  // namespace moec
