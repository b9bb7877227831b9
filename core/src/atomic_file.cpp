#include "sprint/atomic_file.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "sprint/error.h"

namespace fs = std::filesystem;

namespace sprint {

// The rename in commit() replaces whatever has the target's name: a symbolic link itself (not its target), a
// device node (run as root, "--out /dev/full" would become a PNG), a FIFO. Only regular files may be replaced.
void check_replaceable(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;  // absent: created
  if (S_ISREG(st.st_mode)) return;
  const char* kind = S_ISLNK(st.st_mode)   ? "a symbolic link (write to the file it points to instead)"
                     : S_ISDIR(st.st_mode) ? "a folder"
                     : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                     : S_ISFIFO(st.st_mode) ? "a FIFO"
                                            : "not a regular file";
  throw Error(str("cannot write '", path, "': it exists and is ", kind, "; refusing to rename the new file over it"));
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  check_replaceable(path_);
  static std::atomic<uint64_t> counter{0};
  tmp_ = str(path_, ".tmp-", ::getpid(), "-", counter++);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd_ < 0) {
    const int err = errno;
    throw Error(str("cannot write '", path_, "': cannot create temporary file '", tmp_, "': ", std::strerror(err)));
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::fail(const std::string& what, int err) {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
    fd_ = -1;
  }
  throw Error(str("cannot write '", path_, "': ", what, err ? str(": ", std::strerror(err)) : std::string()));
}

void AtomicFile::write(const void* data, size_t size, const std::string& what) {
  if (fd_ < 0) throw Error(str("cannot write '", path_, "': the file was already committed or abandoned"));
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    // Linux writes at most ~2 GiB per call; ask for at most 1 GiB so the loop is the normal path.
    ssize_t n = ::write(fd_, p, std::min<size_t>(size, size_t(1) << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(str(what, " failed"), errno);
    }
    if (n == 0) fail(str(what, " failed (no progress)"), 0);
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) throw Error(str("cannot write '", path_, "': the file was already committed or abandoned"));
  if (::fsync(fd_) != 0) fail("fsync failed", errno);
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    throw Error(str("cannot write '", path_, "': close failed: ", std::strerror(err)));
  }
  try {
    check_replaceable(path_);  // again: it may have appeared since the constructor
  } catch (...) {
    ::unlink(tmp_.c_str());
    throw;
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    throw Error(str("cannot write '", path_, "': cannot rename '", tmp_, "' over it: ", std::strerror(err)));
  }
  // Make the rename durable. Best effort: the new file is in place already.
  const std::string dir = fs::path(path_).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomically(const std::string& path, std::string_view text) {
  AtomicFile f(path);
  f.write(text);
  f.commit();
}

namespace {
thread_local std::string* g_remove_error = nullptr;  // nftw's callback has no user pointer

int remove_entry(const char* path, const struct stat*, int type, struct FTW*) {
  const int rc = type == FTW_DP ? ::rmdir(path) : ::unlink(path);
  if (rc != 0 && errno != ENOENT && g_remove_error && g_remove_error->empty())
    *g_remove_error = str("cannot remove '", path, "': ", std::strerror(errno));
  return 0;  // go on after a failure: remove what can be removed
}
}  // namespace

bool remove_tree(const std::string& path, std::string* error) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return true;
    if (error) *error = str("cannot read '", path, "': ", std::strerror(errno));
    return false;
  }
  std::string err;
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) err = str("cannot remove '", path, "': ", std::strerror(errno));
  } else {
    g_remove_error = &err;
    // FTW_DEPTH: a folder after its contents; FTW_PHYS: do not follow symbolic links.
    if (::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && err.empty())
      err = str("cannot walk '", path, "': ", std::strerror(errno));
    g_remove_error = nullptr;
  }
  if (error) *error = err;
  return err.empty();
}

}  // namespace sprint
