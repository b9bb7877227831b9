// Multi-process data parallel training on PyTorch's c10d: a TCPStore rendezvous and a Gloo process group (CPU).
//
// Launch: one process per rank with the usual variables
//   RANK         this process's rank, 0 .. WORLD_SIZE-1
//   WORLD_SIZE   number of processes (unset or 1: a single process, no c10d at all)
//   MASTER_ADDR  address of rank 0, which hosts the TCPStore (e.g. 127.0.0.1)
//   MASTER_PORT  a free TCP port on MASTER_ADDR
// e.g. `for r in 0 1; do RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 sprint-train ... & done`.
//
// Data parallel rule (what makes W processes compute the same step as one process with the whole batch): the
// config's `batch` is the GLOBAL batch; rank r trains its rows [r * b, (r + 1) * b), b = batch / W. Every rank draws
// the randomness of the whole global batch from its identically seeded generator (make_batch's row range, global
// noise tensors cut with slice()), so rank r computes exactly the rows of the single-process batch it owns. Losses
// are batch means, so the mean over ranks of the gradients (average_gradients) is the gradient of the global batch.
//
// Failure: every collective has a timeout (`dist.timeout_s`). A peer that dies closes its sockets, and the others
// fail at their next collective at once; a peer that hangs or is stopped makes them fail after the timeout. Either
// way the error is a sprint::Error "rank R: ... — another rank probably died or stopped ...", and the command exits
// non-zero.
//
// CUDA (NCCL) is not supported in this build: training runs on the CPU; WORLD_SIZE > 1 with a CUDA device throws.
// Without Gloo headers at build time (Debian package libgloo-dev) WORLD_SIZE > 1 throws, naming the package.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sprint::training {

// The launch variables, validated. Unit-testable without processes: `get` looks a variable up (nullptr: unset).
struct DistributedEnv {
  int rank = 0, world = 1;
  std::string master_addr;
  int master_port = 0;
  // Throws sprint::Error naming the variable: RANK outside [0, WORLD_SIZE), WORLD_SIZE < 1 or not a number,
  // MASTER_ADDR missing, MASTER_PORT missing or outside 1..65535. WORLD_SIZE unset or 1: single process (RANK must
  // then be unset or 0, the other variables are ignored).
  static DistributedEnv parse(const std::function<const char*(const char*)>& get);
  static DistributedEnv from_process_env();
};

// True when this build can run WORLD_SIZE > 1 (c10d Gloo compiled in).
bool distributed_available();

class Distributed {
 public:
  // A single process (world 1): every collective is a no-op and every slice the whole tensor.
  Distributed();
  ~Distributed();
  Distributed(Distributed&&) noexcept;
  Distributed& operator=(Distributed&&) noexcept;

  // Reads RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT (see DistributedEnv) and, when WORLD_SIZE > 1, connects:
  // TCPStore rendezvous at MASTER_ADDR:MASTER_PORT (rank 0 serves it) and a Gloo process group, both with
  // `timeout_seconds`. A rank that does not show up within the timeout makes the others throw.
  static Distributed from_env(double timeout_seconds, const torch::Device& device = torch::kCPU);
  static Distributed connect(const DistributedEnv& env, double timeout_seconds,
                             const torch::Device& device = torch::kCPU);

  int rank() const { return rank_; }
  int world() const { return world_; }
  bool is_main() const { return rank_ == 0; }
  bool active() const { return world_ > 1; }
  double timeout_seconds() const { return timeout_s_; }

  // This rank's share of a global batch; throws when `global_batch` is not a multiple of the world size.
  int64_t local_batch(int64_t global_batch) const;
  // First row of this rank in a global batch.
  int64_t first_row(int64_t global_batch) const { return rank_ * local_batch(global_batch); }
  // The shape of the global tensor whose rows [first_row, first_row + local) are `local_shape` (dim 0 times world).
  std::vector<int64_t> global_shape(at::IntArrayRef local_shape) const;
  // This rank's rows of a global-batch tensor (dim 0); the tensor itself in a single process.
  torch::Tensor slice(const torch::Tensor& global) const;
  // The inverse: every rank's rows in rank order (the global-batch tensor), exactly (an allreduce of the rows placed
  // in zeros: x + 0 is x). For small tensors (latents); the tensor itself in a single process.
  torch::Tensor gather_rows(const torch::Tensor& local) const;

  // Mean over ranks of the gradients of `params`: one flattened allreduce (sum, then / world) and unflatten. A
  // parameter without a gradient on every rank keeps none; one that has a gradient on some ranks only gets the
  // average with zeros for the others (the same on every rank). No-op in a single process.
  void average_gradients(const std::vector<torch::Tensor>& params) const;
  // Mean over ranks of values for logging (one allreduce for the whole map); identity in a single process.
  double average(double value) const;
  std::map<std::string, double> average(const std::map<std::string, double>& values) const;
  // Copies rank 0's values into these tensors on every rank (in place; one broadcast per dtype). Used once at the
  // start so every replica starts from rank 0's weights, as DDP does. No-op in a single process.
  void broadcast_from_main(const std::vector<torch::Tensor>& tensors) const;
  // Throws when `value` is not the same on every rank (e.g. the starting step): names `what` and the range.
  void expect_same(double value, const std::string& what) const;
  void barrier() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, world_ = 1;
  double timeout_s_ = 0;
};

}  // namespace sprint::training
