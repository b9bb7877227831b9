// See include/sprint/strict_parse.h.
#include "sprint/strict_parse.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <random>

#include "sprint/error.h"

namespace sprint {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Digits from `i`; returns the index after them (== i when there are none).
size_t skip_digits(const std::string& s, size_t i) {
  while (i < s.size() && is_digit(s[i])) ++i;
  return i;
}

std::string shown(const std::string& text) {
  // Keep messages one line and short whatever was typed.
  std::string s;
  for (char c : text.substr(0, 64)) s += (c == '\n' || c == '\r' || c == '\0') ? ' ' : c;
  return text.size() > 64 ? s + "..." : s;
}

}  // namespace

int64_t parse_integer(const std::string& text, const std::string& what, int64_t min, int64_t max) {
  auto fail = [&]() -> int64_t {
    throw Error(str(what, " '", shown(text), "': expected a whole number from ", min, " to ", max));
  };
  size_t i = (!text.empty() && text[0] == '-') ? 1 : 0;
  const size_t end = skip_digits(text, i);
  if (end == i || end != text.size()) return fail();
  errno = 0;
  char* stop = nullptr;
  const long long v = std::strtoll(text.c_str(), &stop, 10);
  if (errno == ERANGE || v < min || v > max) return fail();
  return v;
}

double parse_decimal(const std::string& text, const std::string& what, double min, double max) {
  auto fail = [&]() -> double {
    throw Error(str(what, " '", shown(text), "': expected a decimal number from ", min, " to ", max));
  };
  size_t i = (!text.empty() && text[0] == '-') ? 1 : 0;
  const size_t int_end = skip_digits(text, i);
  size_t j = int_end;
  size_t frac_digits = 0;
  if (j < text.size() && text[j] == '.') {
    const size_t f = skip_digits(text, j + 1);
    frac_digits = f - (j + 1);
    j = f;
  }
  if (int_end == i && frac_digits == 0) return fail();  // no digits at all
  if (j < text.size() && (text[j] == 'e' || text[j] == 'E')) {
    size_t k = j + 1;
    if (k < text.size() && (text[k] == '-' || text[k] == '+')) ++k;
    const size_t e = skip_digits(text, k);
    if (e == k) return fail();
    j = e;
  }
  if (j != text.size()) return fail();
  const double v = std::strtod(text.c_str(), nullptr);  // ERANGE on underflow too: a tiny finite value is fine
  if (!std::isfinite(v) || v < min || v > max) return fail();
  return v;
}

uint64_t parse_seed(const std::string& text, const std::string& what, bool allow_random) {
  if (allow_random && text == "random") {
    std::random_device rd;
    return ((static_cast<uint64_t>(rd()) << 32) | rd()) & kMaxSeed;
  }
  const size_t end = skip_digits(text, 0);
  errno = 0;
  const unsigned long long v = end == 0 || end != text.size() ? 0 : std::strtoull(text.c_str(), nullptr, 10);
  if (end == 0 || end != text.size() || errno == ERANGE || v > kMaxSeed)
    throw Error(str(what, " '", shown(text), "': expected a seed from 0 to ", kMaxSeed,
                    allow_random ? " or 'random'" : ""));
  return v;
}

}  // namespace sprint
