// sprint-bench: the options and the modes, one file per tool (sprint_bench.cpp has the overview, the command line and
// main): bench_transformer.cpp (default), bench_pipeline.cpp (--pipeline), bench_train.cpp (--train) and
// conv_bench.cpp (--conv); bench_util.h holds what they share.
#pragma once

#include <cstdint>
#include <set>
#include <string>

namespace sprint::bench {

struct Options {
  enum class Mode { Transformer, Pipeline, Train, Conv } mode = Mode::Transformer;
  int repeats = 0, warmup = -1, threads = 0;  // 0 / -1: per-case defaults, all cores
  std::set<std::string> only;
  std::string json_path, save_dir;
  std::string python = SPRINT_BENCH_PYTHON, script = SPRINT_BENCH_SCRIPT, tiny_dir = SPRINT_BENCH_TINY_DIR;
  bool compare = false, keep = false;
  // --pipeline
  std::string pipeline_script = SPRINT_BENCH_PIPELINE_SCRIPT, tiny_pipeline = SPRINT_BENCH_TINY_PIPELINE_DIR;
  std::string tokenizer = SPRINT_BENCH_TOKENIZER;
  int size = 0;            // real-shape image side; 0: real shape not run (opt-in with --real or --size)
  int steps = 0;           // 0: per case (tiny 2, real shape 1)
  int rounds = 1;          // --pipeline: C++ then diffusers, this many times in alternation
  bool no_tiny = false, no_compare = false, no_trim = false, no_winograd = false;
  // --train
  int64_t train_batch = 16;
  std::string device;  // "": cpu, and cuda when available
  std::string train_script = SPRINT_BENCH_TRAIN_SCRIPT, train_configs = SPRINT_BENCH_TRAIN_CONFIGS;
};

// The transformer mode's case names (what --only accepts): tiny, 512, 1024.
bool is_transformer_case(const std::string& name);

int run_transformer_bench(const Options& o);  // bench_transformer.cpp
int run_pipeline_bench(const Options& o);     // bench_pipeline.cpp
int run_train_bench(const Options& o);        // bench_train.cpp

}  // namespace sprint::bench
