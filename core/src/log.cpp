#include "sprint/log.h"

#include <c10/util/Exception.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <new>

#include "sprint/error.h"

namespace sprint {
namespace {
std::mutex g_mutex;
LogSink g_sink;
std::atomic<int> g_level{static_cast<int>(LogLevel::Warn)};

const char* level_name(LogLevel l) {
  switch (l) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warning";
    case LogLevel::Error: return "error";
  }
  return "?";
}
}  // namespace

void set_log_sink(LogSink sink) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_sink = std::move(sink);
}
void set_log_level(LogLevel min_level) { g_level = static_cast<int>(min_level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void log(LogLevel level, const std::string& message) {
  if (static_cast<int>(level) < g_level.load()) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_sink) {
    g_sink(level, message);
  } else {
    std::fprintf(stderr, "[sprint %s] %s\n", level_name(level), message.c_str());
  }
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string message_of(const std::exception& e) {
  std::string m;
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    m = c10_error->what_without_backtrace();
    // LibTorch appends "Exception raised from <function> at <file>:<line> (most recent call first):" and frames.
    const auto at = m.find("Exception raised from");
    if (at != std::string::npos) m.erase(at);
  } else if (dynamic_cast<const std::bad_alloc*>(&e)) {
    m = "out of memory (an allocation failed)";
  } else {
    m = e.what();
  }
  if (m.find("not enough memory") != std::string::npos || m.find("CUDA out of memory") != std::string::npos) {
    // c10's allocator message ("DefaultCPUAllocator: not enough memory: you tried to allocate N bytes.").
    const auto colon = m.find(':');
    m = "out of memory" + (colon == std::string::npos ? std::string() : m.substr(colon));
  }
  std::string line;
  for (char c : m) {
    if (c == '\n' || c == '\r') {
      if (!line.empty() && line.back() != ' ') line += "; ";
    } else {
      line += c;
    }
  }
  while (!line.empty() && (line.back() == ' ' || line.back() == ';')) line.pop_back();
  return line.empty() ? std::string("unknown error") : line;
}

}  // namespace sprint
