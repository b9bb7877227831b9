// Shared by the libFuzzer targets: a scratch folder of this process (for the parsers that read files), writing an
// input into it, and the failure report for a broken invariant (a property of the parser's result, not an
// exception: those are the correct outcome for bad input).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace sprint_fuzz {

// $SPRINT_FUZZ_TMPDIR, else $TMPDIR, else /dev/shm (tmpfs: an input per execution costs no disk I/O), plus
// "sprint-fuzz-<pid>". Created on first use and removed when the process exits normally; run.sh removes the whole
// scratch root afterwards as well (libFuzzer leaves through _Exit after a crash).
inline const std::filesystem::path& scratch_dir() {
  // Never destroyed: the atexit handler below runs after static destructors registered later would have run.
  static const std::filesystem::path* dir = [] {
    const char* base = std::getenv("SPRINT_FUZZ_TMPDIR");
    if (!base || !*base) base = std::getenv("TMPDIR");
    std::filesystem::path root = base && *base ? base : (std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp");
    auto* d = new std::filesystem::path(root / ("sprint-fuzz-" + std::to_string(::getpid())));
    std::error_code ec;
    std::filesystem::create_directories(*d, ec);
    if (ec) {
      std::fprintf(stderr, "fuzz harness: cannot create scratch folder %s: %s\n", d->c_str(), ec.message().c_str());
      std::abort();
    }
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(scratch_dir(), ignored);
    });
    return d;
  }();
  return *dir;
}

// Replaces `path` by the input bytes. A failure here is the harness's (a full disk), reported as such.
inline void write_file(const std::filesystem::path& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  bool ok = f != nullptr;
  if (ok && size > 0) ok = std::fwrite(data, 1, size, f) == size;
  if (f) ok = std::fclose(f) == 0 && ok;
  if (!ok) {
    std::fprintf(stderr, "fuzz harness: cannot write %s (is the scratch folder full?)\n", path.c_str());
    std::abort();
  }
}

// A parser returned something it promises never to return: print what and abort, so libFuzzer saves the input.
[[noreturn]] inline void invariant_broken(const std::string& what) {
  std::fprintf(stderr, "\n==== fuzz invariant broken: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace sprint_fuzz
