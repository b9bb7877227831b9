// Minimal levelled logging for the libraries. The default sink prints warnings and errors to stderr;
// app/ and the CLIs may install their own sink (the app shows errors in the UI, the CLIs add --verbose).
#pragma once

#include <functional>
#include <string>

#include "sprint/error.h"

namespace sprint {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };

using LogSink = std::function<void(LogLevel, const std::string&)>;

void set_log_sink(LogSink sink);          // nullptr restores the default (stderr)
void set_log_level(LogLevel min_level);   // messages below it are dropped (default Warn)
LogLevel log_level();
void log(LogLevel level, const std::string& message);

template <typename... Args> void log_debug(const Args&... a) { if (log_level() <= LogLevel::Debug) log(LogLevel::Debug, str(a...)); }
template <typename... Args> void log_info(const Args&... a)  { if (log_level() <= LogLevel::Info) log(LogLevel::Info, str(a...)); }
template <typename... Args> void log_warn(const Args&... a)  { log(LogLevel::Warn, str(a...)); }

}  // namespace sprint
