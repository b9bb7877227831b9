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
#include "sprint/error.h"
#include "sprint/runtime.h"
#include "sprint_bench.h"

using sprint::bench::Options;

namespace {

const char* kUsage = R"(usage: sprint-bench [options]
  --only tiny|512|1024   run one case (comma-separated list allowed); default: all
  --repeats N            timed runs per case (default: per case, e.g. tiny 50, 512 3, 1024 2 on CPU)
  --warmup N             untimed runs before timing (default: per case)
  --threads N            intra-op threads (default: all cores, or $SPRINT_THREADS)
  --json FILE            also write the numbers as JSON
  --save-weights DIR     write DIR/<case>/{config.json, diffusion_pytorch_model.safetensors, inputs.safetensors}
                         and DIR/cpp_results.json for tests/bench/bench_diffusers.py
  --compare              also time diffusers on the same weights (runs bench_diffusers.py) and print both
  --keep                 keep the temporary --compare folder
  --python PATH          Python for --compare (default: SPRINT_PYTHON at configure time)
  --script PATH          bench_diffusers.py to run
  --tiny-dir DIR         tiny transformer folder (default: the test fixture)
  --pipeline             per-stage latency of the sketch-to-image pipeline (tokenize, text encoder, condition
                         encode, transformer+ControlNet, decode) on the tiny fixture pipeline, cold and warm, next
                         to diffusers' SanaSprintPipeline on the same folder, seed and threads
pipeline options:
  --real                 also run the real 0.6B shape at 512x512 (random weights, reduced 2-layer Gemma; slow)
  --size N               real-shape image side (512 or 1024; implies --real)
  --steps N              SCM steps (default: tiny 2, real shape 1)
  --repeats N            runs per warm scenario (default: tiny 5, real shape 1)
  --rounds N             run C++ and then diffusers N times in turn and print each round's ratios: on a machine
                         whose speed drifts (a shared VM) a single round compares two different machines; the
                         tables show the round with the median total ratio (default 1)
  --no-tiny              skip the tiny fixture pipeline
  --no-compare           C++ only (skip bench_pipeline_diffusers.py)
  --no-trim              C++ encodes all max_sequence_length text columns, as diffusers does, instead of skipping
                         the padding (embed_prompts_trimmed; the same image): shows what that skip is worth
  --no-winograd          C++ runs the DC-AE with torch's NCHW convolutions, as diffusers does, instead of the
                         Winograd / channels-last CPU path (PipelineOptions::fast_cpu_vae; the same image up to
                         float32 rounding): shows what that path is worth
  --keep                 keep the temporary folder (random model, settings, outputs)
  --pipeline-script PATH bench_pipeline_diffusers.py to run
  --tiny-pipeline DIR    tiny pipeline folder (default: the test fixture)
  --tokenizer FILE       tokenizer.model for the real-shape folder (default: the fixture tokenizer)
  --device cpu|cuda      cpu: fp32 (default); cuda: bf16 on the GPU, diffusers too
  --train                training-step throughput (samples/s) of the teacher flow-matching step and the distill G
                         and D steps on the bundled model's sizes (random weights), next to the same steps in
                         PyTorch/diffusers (bench_train_diffusers.py) on the same weights, inputs and random draws,
                         with the first-step losses of both sides
train options:
  --train-batch N        batch size (default 16, the bundled distill config's)
  --repeats N            timed steps per step kind, median reported (default 10)
  --warmup N             untimed steps first (default 2)
  --device cpu|cuda      only this device (default: cpu, and cuda when available)
  --no-compare           C++ only (skip bench_train_diffusers.py)
  --keep                 keep the temporary folder (weights, inputs, first-step tensors, results)
  --train-script PATH    bench_train_diffusers.py to run
  --train-configs DIR    folder with teacher.json and distill.json (default: training/configs/emoji)
  --conv                 the DC-AE's 3x3 convolution shapes (f32c32, float32, CPU): torch NCHW (as diffusers runs
                         them), torch channels-last and sprint's Winograd F(4x4, 3x3), with ratios and NMSE
conv options:
  --size N               image side (default 512)
  --repeats N            timed runs per shape, median reported (default 3)
  --threads, --json and --python apply to every mode; --only, --compare and --save-weights to the transformer
  mode only (--pipeline and --train compare with diffusers unless --no-compare)
)";

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      SPRINT_CHECK(i + 1 < argc, a, " needs a value\n", kUsage);
      return argv[++i];
    };
    auto number = [&]() {
      const std::string v = value();
      try {
        return std::stoi(v);
      } catch (const std::exception&) {
        throw sprint::Error(sprint::str(a, ": '", v, "' is not a number"));
      }
    };
    if (a == "--only") {
      std::string v = value(), item;
      for (size_t p = 0; p <= v.size(); ++p) {
        if (p < v.size() && v[p] != ',') { item += v[p]; continue; }
        SPRINT_CHECK(sprint::bench::is_transformer_case(item), "--only: unknown case '", item,
                     "' (use tiny, 512 or 1024)");
        o.only.insert(item), item.clear();
      }
    } else if (a == "--repeats") { o.repeats = number(); SPRINT_CHECK(o.repeats > 0, "--repeats must be > 0");
    } else if (a == "--warmup") { o.warmup = number(); SPRINT_CHECK(o.warmup >= 0, "--warmup must be >= 0");
    } else if (a == "--threads") { o.threads = number();
    } else if (a == "--json") { o.json_path = value();
    } else if (a == "--save-weights") { o.save_dir = value();
    } else if (a == "--compare") { o.compare = true;
    } else if (a == "--keep") { o.keep = true;
    } else if (a == "--python") { o.python = value();
    } else if (a == "--script") { o.script = value();
    } else if (a == "--tiny-dir") { o.tiny_dir = value();
    } else if (a == "--pipeline") { o.mode = Options::Mode::Pipeline;
    } else if (a == "--real") { if (o.size == 0) o.size = 512;
    } else if (a == "--size") {
      o.size = number();
      SPRINT_CHECK(o.size > 0 && o.size % 32 == 0, "--size must be a positive multiple of 32 (the DC-AE compresses 32x)");
    } else if (a == "--rounds") { o.rounds = number(); SPRINT_CHECK(o.rounds >= 1 && o.rounds <= 20, "--rounds must be 1 to 20");
    } else if (a == "--steps") { o.steps = number(); SPRINT_CHECK(o.steps >= 1 && o.steps <= 4, "--steps must be 1 to 4");
    } else if (a == "--no-tiny") { o.no_tiny = true;
    } else if (a == "--no-compare") { o.no_compare = true;
    } else if (a == "--no-trim") { o.no_trim = true;
    } else if (a == "--no-winograd") { o.no_winograd = true;
    } else if (a == "--pipeline-script") { o.pipeline_script = value();
    } else if (a == "--tiny-pipeline") { o.tiny_pipeline = value();
    } else if (a == "--tokenizer") { o.tokenizer = value();
    } else if (a == "--train") { o.mode = Options::Mode::Train;
    } else if (a == "--conv") { o.mode = Options::Mode::Conv;
    } else if (a == "--train-batch") {
      o.train_batch = number();
      SPRINT_CHECK(o.train_batch >= 1 && o.train_batch <= 4096, "--train-batch must be 1 to 4096");
    } else if (a == "--device") {
      o.device = value();
      SPRINT_CHECK(o.device == "cpu" || o.device == "cuda", "--device must be cpu or cuda");
    } else if (a == "--train-script") { o.train_script = value();
    } else if (a == "--train-configs") { o.train_configs = value();
    } else if (a == "-h" || a == "--help") { std::cout << kUsage; std::exit(0);
    } else { throw sprint::Error(sprint::str("unknown option '", a, "'\n", kUsage)); }
  }
  return o;
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
    const Options o = parse_args(argc, argv);
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
    std::cerr << "sprint-bench: " << e.what() << "\n";
  }
  return 1;
}
