// The sprint-train commands (each returns the process exit code; errors throw).
#pragma once

#include "sprint/training/config_file.h"

namespace sprint::training::cli {

int run_autoencoder(const CommandLine& cl);
int run_pretrain(const CommandLine& cl);
int run_controlnet(const CommandLine& cl);
int run_distill(const CommandLine& cl);
int run_eval(const CommandLine& cl);
int run_classifier(const CommandLine& cl);
int run_conditions(const CommandLine& cl);

}  // namespace sprint::training::cli
