// sprint-train: the training commands of Sprint Studio.
//   sprint-train autoencoder --config training/configs/emoji/autoencoder.json [--set key=value ...] [--resume]
//   sprint-train pretrain    ... (flow-matching teacher + text encoder)
//   sprint-train controlnet  ... (ControlNet on a frozen teacher)
//   sprint-train distill     ... (sCM + LADD student)
//   sprint-train classifier  ... (the feature net of the evaluation's Fréchet distance)
//   sprint-train eval        ... (metrics and grids of the bundled model's report)
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "commands.h"
#include "common.h"
#include "sprint/error.h"

namespace {

const char* kUsage = R"(usage: sprint-train COMMAND --config FILE [--set key=value ...] [--resume] [--out DIR] [--steps N] ...

commands:
  autoencoder   small DC-AE-family autoencoder on the dataset's pictures
  pretrain      flow-matching teacher (dense timestep, QK RMSNorm) and its text encoder
  controlnet    ControlNet on a frozen teacher, (picture, scribble, caption) data
  distill       SANA-Sprint sCM + LADD student (with the ControlNet when the teacher has one)
  classifier    the small feature net (picture classifier) behind eval's Fréchet distance
  eval          metrics, tables and sample grids of a trained model set
  conditions    write the condition map of every dataset picture (and a preview grid)

Every config key can be overridden with --set key=value (dotted keys for sections: --set optim.lr=2e-4); the
common ones also have flags: --out --steps --batch --seed --threads --data-dir --data-limit --log-every
--ckpt-every --sample-every --optim-lr. Unknown keys and flags are errors. --resume continues the run in --out
from its latest checkpoint (bit-identically on the CPU). See training/README.md.
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  using namespace sprint::training::cli;
  try {
    auto cl = sprint::training::parse_command_line(args, kCommonFlags);
    if (cl.help) {
      std::cout << kUsage;
      return 0;
    }
    if (command == "autoencoder") return run_autoencoder(cl);
    if (command == "pretrain") return run_pretrain(cl);
    if (command == "controlnet") return run_controlnet(cl);
    if (command == "distill") return run_distill(cl);
    if (command == "classifier") return run_classifier(cl);
    if (command == "eval") return run_eval(cl);
    if (command == "conditions") return run_conditions(cl);
    std::cerr << "sprint-train: unknown command '" << command << "'\n" << kUsage;
    return 2;
  } catch (const sprint::training::NonFiniteError& e) {
    std::cerr << "sprint-train " << command << ": stopped: " << e.what()
              << "\n  (the last checkpoint is intact; lower optim.lr or grad_clip and --resume)\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "sprint-train " << command << ": error: " << sprint::message_of(e) << "\n";
    return 1;
  }
}
