// Data parallel training on c10d: TCPStore rendezvous + ProcessGroupGloo (see distributed.h).
//
// Build notes. The pip LibTorch ships the c10d headers and the Gloo backend inside libtorch_cpu.so but not Gloo's
// own headers, which ProcessGroupGloo.hpp includes; SPRINT_HAVE_GLOO is set by training/CMakeLists.txt when the
// Debian package libgloo-dev provides them. This file is the only one that sees ProcessGroupGloo.hpp, and it only
// calls LibTorch's out-of-line code (Options' constructor, createDevice*, the ProcessGroupGloo constructor and the
// virtual collectives through c10d::Backend). Every Gloo type in those declarations is held through shared_ptr /
// unique_ptr, so the layout of the classes this file allocates (ProcessGroupGloo, its Options) does not depend on
// the version of the Gloo headers, which may differ from the Gloo LibTorch was built with.
#include "sprint/training/distributed.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "sprint/error.h"

#ifdef SPRINT_HAVE_GLOO
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace sprint::training {
namespace {

#ifdef SPRINT_HAVE_GLOO
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string fmt_seconds(double s) {
  std::ostringstream os;
  os.precision(s < 10 ? 2 : 4);
  os << s;
  return os.str();
}

// Gloo's messages start with "[/path/to/file.cc:123] "; drop it, keep the rest on one line.
std::string clean_detail(std::string msg) {
  if (!msg.empty() && msg.front() == '[') {
    const auto close = msg.find("] ");
    if (close != std::string::npos && close < 200) msg = msg.substr(close + 2);
  }
  for (const char* cut : {"\n", " This is typically caused"}) {
    const auto pos = msg.find(cut);
    if (pos != std::string::npos) msg = msg.substr(0, pos);
  }
  return msg;
}

bool says_timeout(const std::string& msg) {
  std::string low = msg;
  std::transform(low.begin(), low.end(), low.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return low.find("timed out") != std::string::npos || low.find("timeout") != std::string::npos;
}

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}
#endif

int64_t parse_int(const char* name, const char* text) {
  const std::string s = text;
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  SPRINT_CHECK(!s.empty() && used == s.size(), "environment variable ", name, "='", s, "' is not an integer");
  return v;
}

}  // namespace

// ---- environment ---------------------------------------------------------------------------------------------------

DistributedEnv DistributedEnv::parse(const std::function<const char*(const char*)>& get) {
  DistributedEnv e;
  const char* ws = get("WORLD_SIZE");
  const char* rk = get("RANK");
  if (ws && *ws) {
    const int64_t w = parse_int("WORLD_SIZE", ws);
    SPRINT_CHECK(w >= 1 && w <= 65536, "environment variable WORLD_SIZE=", w, " must be between 1 and 65536");
    e.world = static_cast<int>(w);
  }
  if (rk && *rk) {
    const int64_t r = parse_int("RANK", rk);
    SPRINT_CHECK(r >= 0 && r < e.world, "environment variable RANK=", r, " is out of range for WORLD_SIZE=", e.world,
                 " (ranks are 0..", e.world - 1, e.world == 1 && !(ws && *ws) ? "; WORLD_SIZE is unset" : "", ")");
    e.rank = static_cast<int>(r);
  }
  if (e.world == 1) return e;
  const char* addr = get("MASTER_ADDR");
  SPRINT_CHECK(addr && *addr, "WORLD_SIZE=", e.world, " but MASTER_ADDR is not set: set it to the address of rank 0 "
               "(e.g. MASTER_ADDR=127.0.0.1 when every rank runs on this machine)");
  e.master_addr = addr;
  const char* port = get("MASTER_PORT");
  SPRINT_CHECK(port && *port, "WORLD_SIZE=", e.world, " but MASTER_PORT is not set: set it to a free TCP port on ",
               e.master_addr, " (e.g. MASTER_PORT=29500), the same on every rank");
  const int64_t p = parse_int("MASTER_PORT", port);
  SPRINT_CHECK(p >= 1 && p <= 65535, "environment variable MASTER_PORT=", p, " is not a TCP port (1..65535)");
  e.master_port = static_cast<int>(p);
  SPRINT_CHECK(rk && *rk, "WORLD_SIZE=", e.world, " but RANK is not set: give each process its rank, 0..", e.world - 1);
  return e;
}

DistributedEnv DistributedEnv::from_process_env() {
  return parse([](const char* name) { return static_cast<const char*>(std::getenv(name)); });
}

// ---- process group -------------------------------------------------------------------------------------------------

#ifdef SPRINT_HAVE_GLOO

bool distributed_available() { return true; }

struct Distributed::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> pg;
  int rank = 0;
  double timeout_s = 0;

  // Runs one collective and waits for it; turns any failure into the "another rank probably died" error.
  void run(const std::string& what, const std::function<c10::intrusive_ptr<c10d::Work>()>& start) const {
    const auto t0 = Clock::now();
    std::string detail;
    try {
      auto work = start();
      // Gloo enforces the timeout inside the collective; the wait's own limit is a backstop.
      work->wait(std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000) + 30000));
      return;
    } catch (const c10::Error& e) {
      detail = clean_detail(e.what_without_backtrace());
    } catch (const std::exception& e) {
      detail = clean_detail(e.what());
    }
    fail(what, detail, seconds_since(t0));
  }

  [[noreturn]] void fail(const std::string& what, const std::string& detail, double elapsed) const {
    const bool timed_out = says_timeout(detail) || elapsed >= 0.95 * timeout_s;
    if (timed_out)
      throw Error(str("rank ", rank, ": ", what, " timed out after ", fmt_seconds(timeout_s), " s — another rank "
                      "probably died or stopped (no answer within dist.timeout_s = ", fmt_seconds(timeout_s),
                      " s; check the other ranks' logs) [", detail, "]"));
    throw Error(str("rank ", rank, ": ", what, " failed after ", fmt_seconds(elapsed), " s (timeout ",
                    fmt_seconds(timeout_s), " s): a peer's connection was lost — another rank probably died or "
                    "stopped (check the other ranks' logs) [", detail, "]"));
  }

  void allreduce(torch::Tensor& t, c10d::ReduceOp::RedOpType op, const std::string& what) const {
    std::vector<at::Tensor> v{t};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp(op);
    run(what, [&] { return pg->allreduce(v, o); });
  }
};

Distributed Distributed::connect(const DistributedEnv& env, double timeout_seconds, const torch::Device& device) {
  Distributed d;
  d.rank_ = env.rank;
  d.world_ = env.world;
  d.timeout_s_ = timeout_seconds;
  if (env.world == 1) return d;
  SPRINT_CHECK(timeout_seconds > 0, "dist.timeout_s = ", timeout_seconds, " must be positive");
  SPRINT_CHECK(!device.is_cuda(), "rank ", env.rank, ": data-parallel training on CUDA (c10d NCCL) is not supported "
               "in this build; training runs on the CPU with c10d Gloo");
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000));
  auto impl = std::make_unique<Impl>();
  impl->rank = env.rank;
  impl->timeout_s = timeout_seconds;
  const std::string where = str(env.master_addr, ":", env.master_port);
  const auto t0 = Clock::now();
  auto rendezvous_error = [&](const std::string& detail) {
    return Error(str("rank ", env.rank, ": rendezvous of ", env.world, " ranks at MASTER_ADDR:MASTER_PORT = ", where,
                     " failed after ", fmt_seconds(seconds_since(t0)), " s (dist.timeout_s = ",
                     fmt_seconds(timeout_seconds), "): ", clean_detail(detail), " — another rank probably died or did "
                     "not start, or the ranks disagree on MASTER_ADDR / MASTER_PORT / WORLD_SIZE, or the port is in "
                     "use (rank 0 listens on it)"));
  };
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(env.master_port);
    so.isServer = env.rank == 0;
    so.numWorkers = static_cast<size_t>(env.world);
    so.waitWorkers = true;
    so.timeout = timeout;
    impl->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (is_loopback(env.master_addr))
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else if (ifname && *ifname)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    opts->threads = 1;
    c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo =
        c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, env.rank, env.world, opts);
    impl->pg = gloo;
  } catch (const c10::Error& e) {
    throw rendezvous_error(e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw rendezvous_error(e.what());
  }
  d.impl_ = std::move(impl);
  return d;
}

void Distributed::average_gradients(const std::vector<torch::Tensor>& params) const {
  if (!active()) return;
  torch::NoGradGuard ng;
  bool wide = false;
  for (const auto& p : params)
    if (p.grad().defined() && p.grad().scalar_type() == torch::kFloat64) wide = true;
  const auto dtype = wide ? torch::kFloat64 : torch::kFloat32;
  std::vector<torch::Tensor> parts;
  parts.reserve(params.size() + 1);
  auto present = torch::zeros({static_cast<int64_t>(params.size())}, dtype);
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& g = params[i].grad();
    if (g.defined()) {
      parts.push_back(g.detach().reshape({-1}).to(dtype));
      present[static_cast<int64_t>(i)] = 1;
    } else {
      parts.push_back(torch::zeros({params[i].numel()}, dtype));
    }
  }
  parts.push_back(present);
  auto flat = torch::cat(parts);
  impl_->allreduce(flat, c10d::ReduceOp::SUM, str("allreduce of the gradients (", params.size(), " tensors)"));
  flat.div_(world_);
  auto counts = flat.narrow(0, flat.size(0) - static_cast<int64_t>(params.size()), static_cast<int64_t>(params.size()));
  int64_t off = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    auto p = params[i];
    const int64_t n = p.numel();
    auto avg = flat.narrow(0, off, n).view(p.sizes());
    off += n;
    if (counts[static_cast<int64_t>(i)].item<double>() <= 0) continue;  // no rank has a gradient: keep none
    if (p.grad().defined())
      p.mutable_grad().copy_(avg);
    else
      p.mutable_grad() = avg.to(p.scalar_type()).clone();
  }
}

std::map<std::string, double> Distributed::average(const std::map<std::string, double>& values) const {
  if (!active() || values.empty()) return values;
  auto t = torch::empty({static_cast<int64_t>(values.size())}, torch::kFloat64);
  int64_t i = 0;
  for (const auto& [k, v] : values) t[i++] = v;
  impl_->allreduce(t, c10d::ReduceOp::SUM, "allreduce of the logged values");
  t.div_(world_);
  std::map<std::string, double> out;
  i = 0;
  for (const auto& [k, v] : values) out[k] = t[i++].item<double>();
  return out;
}

void Distributed::expect_same(double value, const std::string& what) const {
  if (!active()) return;
  auto t = torch::tensor({value, -value}, torch::kFloat64);
  impl_->allreduce(t, c10d::ReduceOp::MAX, str("comparison of ", what, " across ranks"));
  const double hi = t[0].item<double>(), lo = -t[1].item<double>();
  SPRINT_CHECK(hi == lo, "rank ", rank_, ": ", what, " differs between ranks (from ", lo, " to ", hi, "; this rank has ",
               value, "): every rank must run the same command with the same config and data");
}

void Distributed::broadcast_from_main(const std::vector<torch::Tensor>& tensors) const {
  if (!active()) return;
  torch::NoGradGuard ng;
  std::map<c10::ScalarType, std::vector<torch::Tensor>> by_type;
  for (const auto& t : tensors)
    if (t.defined() && t.numel() > 0) by_type[t.scalar_type()].push_back(t);
  for (auto& [type, group] : by_type) {
    std::vector<torch::Tensor> flat_parts;
    for (const auto& t : group) flat_parts.push_back(t.detach().reshape({-1}));
    std::vector<at::Tensor> flat{torch::cat(flat_parts)};
    c10d::BroadcastOptions o;
    o.rootRank = 0;
    impl_->run(str("broadcast of rank 0's weights (", group.size(), " tensors)"), [&] { return impl_->pg->broadcast(flat, o); });
    int64_t off = 0;
    for (auto& t : group) {
      t.detach().copy_(flat[0].narrow(0, off, t.numel()).view(t.sizes()));
      off += t.numel();
    }
  }
}

torch::Tensor Distributed::gather_rows(const torch::Tensor& local) const {
  if (!active()) return local;
  torch::NoGradGuard ng;
  auto all = torch::zeros(global_shape(local.sizes()), local.options());
  all.narrow(0, rank_ * local.size(0), local.size(0)).copy_(local);
  impl_->allreduce(all, c10d::ReduceOp::SUM, "gather of the batch rows");
  return all;
}

void Distributed::barrier() const {
  if (!active()) return;
  // A tiny allreduce is a barrier with the same timeout handling (Gloo's barrier has its own timeout too).
  auto t = torch::zeros({1}, torch::kFloat32);
  impl_->allreduce(t, c10d::ReduceOp::SUM, "barrier");
}

#else  // no Gloo headers at build time

bool distributed_available() { return false; }

struct Distributed::Impl {
  [[noreturn]] void unavailable() const { throw Error("data-parallel training is not available in this build"); }
};

Distributed Distributed::connect(const DistributedEnv& env, double timeout_seconds, const torch::Device&) {
  Distributed d;
  d.timeout_s_ = timeout_seconds;
  SPRINT_CHECK(env.world == 1, "WORLD_SIZE=", env.world, ": this sprint-train was built without c10d Gloo (the Gloo "
               "headers of the Debian package libgloo-dev were missing at build time): install libgloo-dev "
               "(./bootstrap.sh deps) and rebuild, or run a single process (WORLD_SIZE unset or 1)");
  return d;
}

void Distributed::average_gradients(const std::vector<torch::Tensor>&) const {}
std::map<std::string, double> Distributed::average(const std::map<std::string, double>& values) const {
  return values;
}
void Distributed::expect_same(double, const std::string&) const {}
torch::Tensor Distributed::gather_rows(const torch::Tensor& local) const { return local; }
void Distributed::broadcast_from_main(const std::vector<torch::Tensor>&) const {}
void Distributed::barrier() const {}

#endif

// ---- common --------------------------------------------------------------------------------------------------------

Distributed::Distributed() = default;
Distributed::~Distributed() = default;
Distributed::Distributed(Distributed&&) noexcept = default;
Distributed& Distributed::operator=(Distributed&&) noexcept = default;

Distributed Distributed::from_env(double timeout_seconds, const torch::Device& device) {
  return connect(DistributedEnv::from_process_env(), timeout_seconds, device);
}

int64_t Distributed::local_batch(int64_t global_batch) const {
  SPRINT_CHECK(global_batch % world_ == 0, "batch ", global_batch, " is not a multiple of WORLD_SIZE = ", world_,
               ": 'batch' is the global batch, split evenly over the ranks; choose a multiple of ", world_);
  return global_batch / world_;
}

std::vector<int64_t> Distributed::global_shape(at::IntArrayRef local_shape) const {
  std::vector<int64_t> s = local_shape.vec();
  SPRINT_CHECK(!s.empty(), "Distributed::global_shape: a scalar has no batch dimension");
  s[0] *= world_;
  return s;
}

torch::Tensor Distributed::slice(const torch::Tensor& global) const {
  if (world_ == 1) return global;
  const int64_t n = global.size(0);
  const int64_t b = local_batch(n);
  return global.narrow(0, rank_ * b, b);
}

double Distributed::average(double value) const {
  if (!active()) return value;
  return average(std::map<std::string, double>{{"v", value}}).at("v");
}

}  // namespace sprint::training
