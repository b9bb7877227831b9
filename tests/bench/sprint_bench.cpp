// sprint-bench: SanaTransformer2DModel forward latency at batch 1 (tiny fixture model, 0.6B Sprint at 512² and
// 1024²), achieved GFLOP/s from an analytic FLOP count next to a matmul peak measured in the same run, and with
// --compare the same numbers for diffusers on the same weights, inputs and thread count (plus an output NMSE, which
// makes the comparison a full-size parity check as well).
//
// A tool, not a test: nothing here asserts; the numbers are for people. Modes: transformer (default); --pipeline:
// per-stage latency of the whole sketch-to-image pipeline, cold and warm, against diffusers' SanaSprintPipeline
// (bench_pipeline.cpp); --train: training-step throughput (teacher flow matching, distill G and D steps) against the
// same steps in PyTorch/diffusers, with a first-step loss check (bench_train.cpp); --conv: the DC-AE's 3x3
// convolution shapes (conv_bench.cpp). The transformer mode is bench_transformer.cpp; this file holds the command
// line and main, sprint_bench.h the options, bench_util.h what the modes share.
#include <execinfo.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>

#include "conv_bench.h"
#include "sprint/cli.h"
#include "sprint/error.h"
#include "sprint/runtime.h"
#include "sprint_bench.h"

using sprint::bench::Options;

namespace {

// The command line (CLI11, as every Sprint Studio program: --opt=value works, usage errors exit 2). Returns -1 to
// go on, else the exit code.
int parse_args(int argc, char** argv, Options& o) {
  using sprint::add_integer_option;
  CLI::App app{"sprint-bench: speed of the transformer, the whole pipeline, training steps and the DC-AE's "
               "convolutions, next to diffusers/PyTorch on the same weights and inputs"};
  auto* transformer = app.add_option_group("transformer mode (default)");
  transformer->add_option("--only", o.only, "run these cases only: tiny, 512, 1024 (comma-separated)")
      ->delimiter(',')
      ->check(CLI::IsMember({"tiny", "512", "1024"}));
  transformer->add_option("--save-weights", o.save_dir,
                          "write DIR/<case>/{config.json, diffusion_pytorch_model.safetensors, inputs.safetensors} "
                          "and DIR/cpp_results.json for tests/bench/bench_diffusers.py");
  transformer->add_flag("--compare", o.compare, "also time diffusers on the same weights (bench_diffusers.py)");
  transformer->add_option("--script", o.script, "bench_diffusers.py to run")->capture_default_str();
  transformer->add_option("--tiny-dir", o.tiny_dir, "tiny transformer folder")->capture_default_str();

  auto* pipeline = app.add_option_group("pipeline mode");
  pipeline->add_flag_callback("--pipeline", [&o] { o.mode = Options::Mode::Pipeline; },
                              "per-stage latency of the sketch-to-image pipeline (tokenize, text encoder, condition "
                              "encode, transformer+ControlNet, decode), cold and warm, next to diffusers' "
                              "SanaSprintPipeline on the same folder, seed and threads");
  pipeline->add_flag_callback("--real", [&o] { if (o.size == 0) o.size = 512; },
                              "also run the real 0.6B shape at 512x512 (random weights, reduced 2-layer Gemma; slow)");
  add_integer_option(*pipeline, "--rounds", o.rounds,
                     "run C++ and then diffusers N times in turn and print each round's ratios (a shared VM's "
                     "speed drifts); the tables show the round with the median total ratio",
                     1, 20);
  pipeline->add_flag("--no-tiny", o.no_tiny, "skip the tiny fixture pipeline");
  pipeline->add_flag("--no-compare", o.no_compare, "C++ only (also for --train)");
  pipeline->add_flag("--no-trim", o.no_trim,
                     "encode all max_sequence_length text columns, as diffusers does (shows what skipping the "
                     "padding is worth)");
  pipeline->add_flag("--no-winograd", o.no_winograd,
                     "run the DC-AE with torch's NCHW convolutions, as diffusers does (shows what the CPU engine is "
                     "worth)");
  pipeline->add_option("--pipeline-script", o.pipeline_script, "bench_pipeline_diffusers.py to run")
      ->capture_default_str();
  pipeline->add_option("--tiny-pipeline", o.tiny_pipeline, "tiny pipeline folder (or a trained model folder)")
      ->capture_default_str();
  pipeline->add_option("--tokenizer", o.tokenizer, "tokenizer.model for the real-shape folder")->capture_default_str();

  auto* train = app.add_option_group("train mode");
  train->add_flag_callback("--train", [&o] { o.mode = Options::Mode::Train; },
                           "training-step throughput of the teacher flow-matching step and the distill G and D "
                           "steps, next to the same steps in PyTorch/diffusers (bench_train_diffusers.py)");
  int train_batch = static_cast<int>(o.train_batch);
  add_integer_option(*train, "--train-batch", train_batch, "batch size", 1, 4096);
  train->add_option("--train-script", o.train_script, "bench_train_diffusers.py to run")->capture_default_str();
  train->add_option("--train-configs", o.train_configs, "folder with teacher.json and distill.json")
      ->capture_default_str();

  auto* conv = app.add_option_group("conv mode");
  conv->add_flag_callback("--conv", [&o] { o.mode = Options::Mode::Conv; },
                          "the DC-AE's 3x3 convolution shapes (f32c32, float32, CPU): torch NCHW, torch "
                          "channels-last and Winograd F(4x4, 3x3), with ratios and NMSE");

  add_integer_option(app, "--repeats", o.repeats, "timed runs per case (0: per-case default)", 0, 1000000);
  add_integer_option(app, "--warmup", o.warmup, "untimed runs first (-1: per-case default)", -1, 1000000);
  add_integer_option(app, "--threads", o.threads, "intra-op threads (0: all cores, or $SPRINT_THREADS)", 0,
                     sprint::kMaxThreads);
  add_integer_option(app, "--size", o.size,
                     "image side, a multiple of 32: --pipeline's real shape (512 or 1024; implies --real), --conv's "
                     "(default 512)",
                     0, 16384);
  add_integer_option(app, "--steps", o.steps, "SCM steps (0: tiny 2, real shape 1)", 0, 4);
  app.add_option("--device", o.device, "cpu (fp32) or cuda (bf16; diffusers too); --train: only this device")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--json", o.json_path, "also write the numbers as JSON");
  app.add_flag("--keep", o.keep, "keep the temporary folder (weights, inputs, outputs)");
  app.add_option("--python", o.python, "Python for the diffusers side")->capture_default_str();
  sprint::add_program_flags(app, "sprint-bench");
  sprint::set_one_line_failures(app, "sprint-bench");
  if (const int rc = sprint::parse_command_line(app, argc, argv); rc >= 0) return rc;
  o.train_batch = train_batch;
  if (o.size % 32) {
    std::cerr << "sprint-bench: error: --size " << o.size << " is not a multiple of 32 (the DC-AE compresses 32x)"
              << "  (see --help)\n";
    return 2;
  }
  return -1;
}

}  // namespace

// A crash prints the stack (library names, and our functions by name: linked with -rdynamic) before dying, so a
// run on a remote machine says where it failed.
void on_fatal_signal(int sig) {
  std::cout.flush();
  const char msg[] = "\nsprint-bench: fatal signal, stack:\n";
  [[maybe_unused]] auto n = write(STDERR_FILENO, msg, sizeof msg - 1);
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

int main(int argc, char** argv) {
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) std::signal(sig, on_fatal_signal);
  try {
    Options o;
    if (const int rc = parse_args(argc, argv, o); rc >= 0) return rc;
    int rc = 1;
    switch (o.mode) {
      case Options::Mode::Pipeline:
        rc = sprint::bench::run_pipeline_bench(o);
        break;
      case Options::Mode::Transformer:
        rc = sprint::bench::run_transformer_bench(o);
        break;
      case Options::Mode::Train:
        rc = sprint::bench::run_train_bench(o);
        break;
      case Options::Mode::Conv:
        sprint::init_threads(o.threads);
        rc = sprint::bench::run_conv_bench(o.size > 0 ? o.size : 512, o.repeats > 0 ? o.repeats : 3, o.json_path);
        break;
    }
    std::cout << "sprint-bench: done" << std::endl;
    return rc;
  } catch (const std::exception& e) {
    std::cerr << "sprint-bench: error: " << sprint::message_of(e) << "\n";
  }
  return 1;
}
