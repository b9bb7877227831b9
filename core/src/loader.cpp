#include "sprint/loader.h"

#include <torch/torch.h>

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <map>

#include "sprint/error.h"
#include "sprint/log.h"
#include "sprint/memory_limits.h"

namespace sprint {

torch::Dtype default_dtype_for(const torch::Device& device) {
  return device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
}

int count_numbered_children(const safetensors::Archive& archive, const std::string& prefix) {
  int n = 0;
  for (const auto& key : archive.keys()) {
    if (key.rfind(prefix, 0) != 0) continue;
    const auto rest = key.substr(prefix.size());
    const auto dot = rest.find('.');
    try {
      n = std::max(n, std::stoi(rest.substr(0, dot)) + 1);
    } catch (const std::exception&) {
      // not a numbered child
    }
  }
  return n;
}

namespace {
std::atomic<bool> g_allow_large{false};
}  // namespace

void set_allow_large(bool allow) { g_allow_large = allow; }
bool allow_large() { return g_allow_large; }

double machine_memory_bytes() {
  const long page = ::sysconf(_SC_PAGESIZE), pages = ::sysconf(_SC_PHYS_PAGES);
  return page > 0 && pages > 0 ? static_cast<double>(page) * static_cast<double>(pages) : 0.0;
}

std::string format_gib(double bytes) { return str(std::round(bytes / double(1 << 30) * 10) / 10, " GiB"); }

void check_fits_memory(double bytes, const std::string& what, const std::string& advice) {
  SPRINT_CHECK(std::isfinite(bytes), what, " needs more memory than can be counted; ", advice);
  const double memory = machine_memory_bytes();
  if (allow_large() || memory <= 0 || bytes <= memory) return;
  throw Error(str(what, " needs about ", format_gib(bytes), ", more than this machine's ", format_gib(memory),
                  " of memory; ", advice, ", or pass --allow-large to try anyway"));
}

void check_model_size(const std::string& what, double params, const std::string& source,
                      const safetensors::Archive* archive) {
  // Built in float32 before any cast.
  check_fits_memory(params * 4, str(source, ": this ", what, " config describes about ", std::llround(params / 1e6),
                                    " million parameters, which in float32"),
                    "check its layer counts and widths");
  if (!archive) return;
  double held = 0;
  for (const auto& key : archive->keys()) held += static_cast<double>(archive->info(key).numel());
  // The estimate is within a small factor; twice what the file holds (plus a margin for tiny test models) is a
  // config that cannot be the one the weights were saved with.
  SPRINT_CHECK(params <= 2 * held + 1e6, source, ": this ", what, " config describes about ",
               std::llround(params / 1e6), " million parameters but ", archive->source(), " holds ",
               std::llround(held / 1e6), " million; the config's layer counts or widths do not match the weights");
}

void check_block_count(const safetensors::Archive& archive, const std::string& prefix, int configured,
                       const std::string& config_file, const std::string& key) {
  const int found = count_numbered_children(archive, prefix);
  SPRINT_CHECK(found == configured, config_file, ": '", key, "' = ", configured, " but ", archive.source(), " holds ",
               found, " ", prefix.substr(0, prefix.size() - 1), found ? str(" (", prefix, "0-", found - 1, ")") : std::string());
}

LoadReport load_state_dict(torch::nn::Module& module, const safetensors::Archive& archive, const LoadOptions& opt) {
  LoadReport report;
  std::vector<std::string> problems;
  std::map<std::string, bool> used;  // archive key -> bound

  // Parameters and buffers, each under its full dotted module name.
  std::vector<std::pair<std::string, torch::Tensor>> targets;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) targets.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) targets.emplace_back(b.key(), b.value());

  torch::NoGradGuard no_grad;
  for (auto& [name, target] : targets) {
    const std::string key = opt.prefix + name;
    if (!archive.contains(key)) {
      if (opt.optional.count(name)) {
        report.missing_optional.push_back(name);
      } else {
        problems.push_back(str("tensor '", key, "' is missing"));
      }
      continue;
    }
    used[key] = true;
    const auto& info = archive.info(key);
    std::vector<int64_t> expected(target.sizes().begin(), target.sizes().end());
    if (info.shape != expected) {
      problems.push_back(str("tensor '", key, "': expected ", shape_str(expected), ", got ", shape_str(info.shape)));
      continue;
    }
    torch::Tensor src;
    try {
      src = archive.tensor(key);
    } catch (const std::exception& e) {
      problems.push_back(e.what());
      continue;
    }
    if (!torch::isFloatingType(src.scalar_type())) {
      problems.push_back(str("tensor '", key, "': expected a floating-point dtype, got ",
                             safetensors::dtype_name(info.dtype)));
      continue;
    }
    // NaN or Inf weights would draw a black picture without a word: refused here, naming the tensor.
    if (const auto bad = src.numel() - torch::isfinite(src).sum().item<int64_t>(); bad > 0) {
      problems.push_back(str("tensor '", key, "' holds ", bad, " NaN or Inf value", bad > 1 ? "s" : "", " (of ",
                             src.numel(), ")"));
      continue;
    }
    // Move the module's tensor to the run dtype/device, then copy the checkpoint value in.
    if (target.scalar_type() != opt.dtype || target.device() != opt.device) {
      target.set_data(target.detach().to(opt.device, opt.dtype));
    }
    target.copy_(src.to(opt.device, opt.dtype));
    report.loaded.push_back(name);
  }
  // Parameters that were optional and absent still move to the run dtype/device.
  for (auto& [name, target] : targets) {
    if (target.scalar_type() != opt.dtype || target.device() != opt.device)
      target.set_data(target.detach().to(opt.device, opt.dtype));
  }

  for (const auto& key : archive.keys()) {
    if (used.count(key)) continue;
    if (opt.ignore_unexpected && opt.ignore_unexpected(key)) {
      report.unexpected.push_back(key);
      continue;
    }
    if (!opt.prefix.empty() && key.rfind(opt.prefix, 0) != 0) {  // outside the sub-model this loader binds
      continue;
    }
    if (opt.strict) {
      problems.push_back(str("tensor '", key, "' is not used by the model (unexpected key)"));
    } else {
      report.unexpected.push_back(key);
      log_warn(archive.source(), ": tensor '", key, "' is not used by the model");
    }
  }

  if (!problems.empty()) {
    std::string msg = str(archive.source(), ": ", problems.size(), " problem", problems.size() > 1 ? "s" : "",
                          " binding the checkpoint to the model:");
    const size_t kMaxListed = 20;  // enough to see the pattern; the count says how many more
    for (size_t i = 0; i < problems.size() && i < kMaxListed; ++i) msg += "\n  " + problems[i];
    if (problems.size() > kMaxListed) msg += str("\n  ... and ", problems.size() - kMaxListed, " more");
    throw Error(msg);
  }
  return report;
}

}  // namespace sprint
