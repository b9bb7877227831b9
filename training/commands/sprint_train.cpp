// sprint-train: the training commands of Sprint Studio.
//   sprint-train autoencoder --config training/configs/emoji/autoencoder.json [--set key=value ...] [--resume]
//   sprint-train pretrain    ... (flow-matching teacher + text encoder)
//   sprint-train controlnet  ... (ControlNet on a frozen teacher)
//   sprint-train distill     ... (sCM + LADD student)
//   sprint-train classifier  ... (the feature net of the evaluation's Fréchet distance)
//   sprint-train eval        ... (metrics and grids of the bundled model's report)
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include "commands.h"
#include "common.h"
#include "sprint/cli.h"
#include "sprint/error.h"

namespace {

const char* kFooter = R"(
Every config key can be overridden with --set key=value (dotted keys for sections: --set optim.lr=2e-4); the
common ones also have flags: --out --steps --batch --seed --threads --data-dir --data-limit --log-every
--ckpt-every --sample-every --optim-lr. Unknown keys and options are errors. --resume continues the run in --out
from its latest checkpoint (bit-identically on the CPU). `sprint-train COMMAND --help` lists a command's options.
Exit codes: 0 done, 1 runtime error (a non-finite loss included), 2 usage error. See training/README.md.)";

using Runner = int (*)(const sprint::training::CommandLine&);

}  // namespace

int main(int argc, char** argv) {
  using namespace sprint::training::cli;
  const std::vector<std::tuple<const char*, const char*, Runner>> commands = {
      {"autoencoder", "small DC-AE-family autoencoder on the dataset's pictures", run_autoencoder},
      {"pretrain", "flow-matching teacher (dense timestep, QK RMSNorm) and its text encoder", run_pretrain},
      {"controlnet", "ControlNet on a frozen teacher, (picture, scribble, caption) data", run_controlnet},
      {"distill", "SANA-Sprint sCM + LADD student (with the ControlNet when the teacher has one)", run_distill},
      {"classifier", "the small feature net (picture classifier) behind eval's Frechet distance", run_classifier},
      {"eval", "metrics, tables and sample grids of a trained model set", run_eval},
      {"conditions", "write the condition map of every dataset picture (and a preview grid)", run_conditions},
  };
  CLI::App app{"sprint-train: the training commands of Sprint Studio"};
  app.footer(kFooter);
  app.require_subcommand(1, 1);
  sprint::add_program_flags(app, "sprint-train");
  sprint::set_one_line_failures(app, "sprint-train");
  sprint::training::CommandLine cl;
  for (const auto& [name, help, run] : commands) {
    auto* command = app.add_subcommand(name, help);
    sprint::training::add_command_line_options(*command, cl, kCommonFlags);
    sprint::set_one_line_failures(*command, std::string("sprint-train ") + name);
  }
  // A mistyped command gets a suggestion rather than CLI11's "argument was not expected".
  if (argc > 1 && argv[1][0] != '-') {
    std::string best;
    size_t best_d = 4;
    bool known = false;
    for (const auto& [name, help, run] : commands) {
      known = known || argv[1] == std::string(name);
      if (const size_t d = sprint::training::edit_distance(argv[1], name); d < best_d) best_d = d, best = name;
    }
    if (!known) {
      std::cerr << "sprint-train: error: unknown command '" << argv[1] << "'"
                << (best.empty() ? std::string() : " (did you mean '" + best + "'?)") << "  (see --help)\n";
      return 2;
    }
  }
  if (const int rc = sprint::parse_command_line(app, argc, argv); rc >= 0) return rc;
  CLI::App* chosen = app.get_subcommands().front();
  const std::string name = chosen->get_name();
  try {
    sprint::training::reject_unknown_arguments(*chosen, kCommonFlags);
  } catch (const CLI::ParseError& e) {
    std::cerr << "sprint-train " << name << ": error: " << e.what() << "  (see sprint-train " << name << " --help)\n";
    return 2;
  }
  try {
    for (const auto& [command_name, help, run] : commands)
      if (name == command_name) return run(cl);
    return 2;  // unreachable: CLI11 accepts only the commands above
  } catch (const sprint::training::NonFiniteError& e) {
    std::cerr << "sprint-train " << name << ": stopped: " << e.what()
              << " (the last checkpoint is intact; lower optim.lr or grad_clip and --resume)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "sprint-train " << name << ": error: " << sprint::message_of(e) << "\n";
    return 1;
  }
}
