// How much memory a model or a request may ask of this machine before anything is allocated
// (docs/architecture.md#input-limits).
//
// check_model_size (loader.h) and Pipeline::generate compare their estimates with machine_memory_bytes() and refuse,
// in one line, what cannot fit. `--allow-large` (sprint-generate, sprint-studio) turns those refusals off for a
// machine with swap or a model the estimate overrates; the consistency checks (a config that describes more
// parameters than its weights hold, sizes that are not multiples of the VAE's factor) stay on.
#pragma once

#include <string>

namespace sprint {

// Process-wide, set once by the program's command line before any model is loaded.
void set_allow_large(bool allow);
bool allow_large();

// Physical memory of this machine in bytes (sysconf; 0 when unknown).
double machine_memory_bytes();

// Throws sprint::Error "<what> needs about N GiB ..., more than this machine's M GiB of memory; <advice>" when
// `bytes` exceeds the machine's memory and allow_large() is off. Non-finite `bytes` is always refused.
void check_fits_memory(double bytes, const std::string& what, const std::string& advice);

// 23.4 GiB as "23.4 GiB".
std::string format_gib(double bytes);

struct TransformerConfig;  // sprint/config.h
struct VaeConfig;          // sprint/vae.h
// Working memory of one generation at width x height in float32, within a small factor (Pipeline::generate checks
// it with check_fits_memory; defined in pipeline.cpp): the larger of the transformer's activations and the DC-AE
// decoder's (each stage's channels at its resolution), doubled with a condition to encode, plus the picture.
double working_memory_bytes(const TransformerConfig& transformer, const VaeConfig& vae, int width, int height,
                            bool condition);

}  // namespace sprint
