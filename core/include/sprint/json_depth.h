// A json::parse callback that refuses values nested deeper than `max_depth` by throwing sprint::Error(message) while
// parsing: printing, copying or freeing a value nested 100000 deep recurses that deep and overflows the stack.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <utility>

#include "sprint/error.h"

namespace sprint {

inline nlohmann::json::parser_callback_t json_depth_limit(int max_depth, std::string message) {
  return [max_depth, message = std::move(message)](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > max_depth) throw Error(message);
    return true;
  };
}

}  // namespace sprint
