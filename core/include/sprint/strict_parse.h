// Strict text-to-number conversion for everything a person types or a file carries (flags, PNG text chunks,
// replay files): plain decimal only, the whole text consumed, the range checked, no silent wrap. "0x10", "1e400",
// " 7", "7 ", "+7", "nan" and "-1" for an unsigned value are all refused. Errors are sprint::Error naming `what`
// and the text: "--steps '0.5': expected a whole number from 1 to 4".
#pragma once

#include <cstdint>
#include <string>

namespace sprint {

// An integer written [-]digits, within [min, max].
int64_t parse_integer(const std::string& text, const std::string& what, int64_t min, int64_t max);

// A finite decimal number, [-]digits[.digits][e[-+]digits] (or [-].digits...), within [min, max].
double parse_decimal(const std::string& text, const std::string& what, double min, double max);

// Noise seeds: digits within [0, 2^63 - 1] (what every seed field and PNG chunk holds), or "random" when
// `allow_random`, which draws one from the system's random device.
constexpr uint64_t kMaxSeed = (uint64_t{1} << 63) - 1;
uint64_t parse_seed(const std::string& text, const std::string& what, bool allow_random = true);

}  // namespace sprint
