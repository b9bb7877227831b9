// Helpers shared by sprint-bench's modes. See bench_util.h.
#include "bench_util.h"

#include <sys/wait.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "sprint/atomic_file.h"
#include "sprint/config.h"
#include "sprint/error.h"
#include "sprint/runtime.h"

namespace sprint::bench {

std::string fmt(double v, const char* spec) {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, spec, v);
  return buf;
}

std::string num(double v, const char* large) { return std::fabs(v) >= 10 || v == 0 ? fmt(v, large) : fmt(v, "%.3g"); }

void print_table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows,
                 size_t text_cols) {
  std::vector<size_t> w(head.size());
  for (size_t c = 0; c < head.size(); ++c) {
    w[c] = head[c].size();
    for (const auto& r : rows) w[c] = std::max(w[c], r[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t c = 0; c < cells.size(); ++c) {
      const size_t pad = w[c] - cells[c].size();
      std::cout << (c ? " | " : "") << (c < text_cols ? cells[c] + std::string(pad, ' ') : std::string(pad, ' ') + cells[c]);
    }
    std::cout << "\n";
  };
  line(head);
  size_t total = 0;
  for (size_t x : w) total += x + 3;
  std::cout << std::string(total - 3, '-') << "\n";
  for (const auto& r : rows) line(r);
}

void sync(const torch::Device& dev) {
  if (dev.is_cuda()) torch::cuda::synchronize();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? NAN : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  return f >> a >> b >> c ? a + " " + b + " " + c : "unknown";
}

TempDir::~TempDir() {
  if (!path.empty()) sprint::remove_tree(path.string());
}

fs::path make_temp_dir(const std::string& prefix) {
  std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  SPRINT_CHECK(mkdtemp(tmpl.data()) != nullptr, "cannot create a temporary folder from ", tmpl);
  return tmpl;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string python_problem(const std::string& python, const std::string& script, const std::vector<std::string>& modules) {
  if (python.empty()) return "no Python configured (configure with -DSPRINT_PYTHON=<venv>/bin/python or pass --python)";
  if (!fs::exists(python)) return "Python '" + python + "' does not exist";
  if (!fs::exists(script)) return "script '" + script + "' does not exist";
  std::string imports, listed;  // "a, b, c" and "a, b and c"
  for (size_t i = 0; i < modules.size(); ++i) {
    imports += (i ? ", " : "") + modules[i];
    listed += (i == 0 ? "" : i + 1 == modules.size() ? " and " : ", ") + modules[i];
  }
  const std::string probe = shell_quote(python) + " -c 'import " + imports + "' >/dev/null 2>&1";
  if (std::system(probe.c_str()) != 0) return "'" + python + "' cannot import " + listed;
  return "";
}

std::optional<json> run_python_script(const std::string& python, const std::string& script, const std::string& name,
                                      const fs::path& dir, std::string* why) {
  const fs::path out = dir / "diffusers_results.json";
  const std::string cmd = sprint::malloc_settings_env() + " " + shell_quote(python) + " " + shell_quote(script) + " " +
                          shell_quote(dir.string()) + " --json " + shell_quote(out.string());
  std::cout << "\n$ " << cmd << "\n" << std::flush;
  const int rc = std::system(cmd.c_str());
  if (rc != 0 || !fs::exists(out)) {
    *why = name + " failed (" +
           (WIFEXITED(rc) ? "exit code " + std::to_string(WEXITSTATUS(rc)) : "status " + std::to_string(rc)) +
           ", see above)";
    return std::nullopt;
  }
  return sprint::read_json_file(out.string());
}

void randomize(torch::nn::Module& m, double norm_weight) {
  torch::NoGradGuard ng;
  for (auto& p : m.named_parameters(true)) {
    auto t = p.value();
    const std::string& k = p.key();
    const bool is_norm_weight = k.find("norm") != std::string::npos && k.size() >= 6 &&
                                k.compare(k.size() - 6, 6, "weight") == 0 && t.dim() == 1;
    if (t.dim() >= 2) {
      t.normal_(0.0, 1.0 / std::sqrt(static_cast<double>(t.numel() / t.size(0))));
    } else if (is_norm_weight) {
      t.fill_(norm_weight);
    } else {
      t.normal_(0.0, 0.02);
    }
  }
}

}  // namespace sprint::bench
