// A file written atomically: bytes go to a temporary file next to the target, which commit() fsyncs and renames
// over the target (then fsyncs the folder, best effort). Until commit() the target is untouched; destroying an
// uncommitted AtomicFile (an exception, a full disk) removes the temporary file. Every failure throws
// sprint::Error naming the target file and the system error.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sprint {

// Throws sprint::Error naming `path` when it exists and is not a regular file (a symbolic link, folder, device or
// FIFO), which an atomic write would replace by renaming over it. AtomicFile checks on creation and again before the
// rename; programs call it up front to fail before long work.
void check_replaceable(const std::string& path);

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // creates the temporary file
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size, const std::string& what = "write");
  void write(std::string_view text) { write(text.data(), text.size()); }
  void commit();

  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void fail(const std::string& what, int err);
  std::string path_, tmp_;
  int fd_ = -1;
};

// Whole-file convenience: AtomicFile f(path); f.write(text); f.commit().
void write_file_atomically(const std::string& path, std::string_view text);

// Removes `path` and everything under it (symbolic links themselves, not their targets), like
// std::filesystem::remove_all but through POSIX nftw: the pip LibTorch exports its own statically linked copy of
// std::filesystem::remove_all, which the dynamic linker may pick over libstdc++'s, and on one GPU machine
// (torch 2.11 cu130, Ubuntu 24.04) that copy jumped to address 0. Returns false and leaves `error` set (naming the
// entry) when something could not be removed; a missing path is not an error.
bool remove_tree(const std::string& path, std::string* error = nullptr);

}  // namespace sprint
