// The processes of an MPI job (`mpirun -np R moec quantize ...`), or just
// this one. Open MPI is optional at build time, like CUDA: without it every
// run is one process, and a moec started by mpirun with R > 1 refuses to run
// (R processes would each write the same output) instead of pretending.
//
// MPI is initialized on first use, only when a launcher's environment says
// the job has more than one process (OMPI_COMM_WORLD_SIZE, PMI_SIZE,
// PMIX_SIZE), so a plain `moec` never touches MPI. Finalized at exit.
#pragma once
#include <cstddef>
#include <vector>

namespace moec {

class MpiWorld {
 public:
  static MpiWorld& get();
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool root() const { return rank_ == 0; }
  // Sends `bytes` from rank `root` to every rank (their vectors resized).
  void broadcast(std::vector<std::byte>& bytes, int root);
  // Ends the whole job after an error on one rank (the others would wait
  // in a broadcast forever). No-op for one process.
  [[noreturn]] void abort(int code);
  static bool built_with_mpi();
  ~MpiWorld();

 private:
  MpiWorld();
  int rank_ = 0, size_ = 1;
  bool initialized_ = false;
};

// The launcher's process count from the environment (1 when not launched by
// an MPI launcher), read without initializing MPI.
int launcher_world_size();

}  // namespace moec
