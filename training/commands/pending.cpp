// Commands still being written (this file shrinks as they land).
#include "commands.h"
#include "sprint/error.h"

namespace sprint::training::cli {

int run_eval(const CommandLine&) { throw Error("eval: not available in this build yet"); }

}  // namespace sprint::training::cli
