// Errors and small diagnostics shared by every library.
//
// Library code throws sprint::Error (a std::runtime_error) with a message that names what was wrong: the file,
// the tensor, the config key. Each stage adds its own context with rethrow_with_context(). Only app/ and the CLIs
// catch and show the message.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace sprint {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Concatenates anything streamable: str("tensor '", name, "' has ", n, " dims").
template <typename... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

// "[2240, 2240]"
std::string shape_str(const std::vector<int64_t>& shape);

// Throws sprint::Error(str(args...)) when cond is false.
#define SPRINT_CHECK(cond, ...)                                     \
  do {                                                              \
    if (!(cond)) throw ::sprint::Error(::sprint::str(__VA_ARGS__)); \
  } while (0)

// The message of `e` for people, on one line: LibTorch errors without their C++ backtrace and source location,
// allocation failures as "out of memory", line breaks folded to "; ". What every CLI prints and with_context keeps.
std::string message_of(const std::exception& e);

// Calls f(); if it throws, rethrows a sprint::Error whose message is "<context>: <original message>".
template <typename F>
auto with_context(const std::string& context, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    throw Error(context + ": " + message_of(e));
  }
}

}  // namespace sprint
