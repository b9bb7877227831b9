#include "sprint/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sprint/atomic_file.h"
#include "sprint/error.h"
#include "sprint/json_depth.h"

// The format is little-endian and tensors are viewed in place, so the host must be little-endian too.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors.cpp assumes a little-endian host");

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace sprint::safetensors {
namespace {

constexpr const char* kMetadataKey = "__metadata__";

std::string errno_text(int err) { return std::strerror(err); }

constexpr int kMaxHeaderDepth = 16;

bool parse_dtype(const std::string& s, DType& out) {
  static const std::pair<const char*, DType> kNames[] = {
      {"F64", DType::F64}, {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"I64", DType::I64},
      {"I32", DType::I32}, {"I16", DType::I16}, {"I8", DType::I8},   {"U8", DType::U8},     {"BOOL", DType::BOOL},
  };
  for (const auto& [name, d] : kNames) {
    if (s == name) {
      out = d;
      return true;
    }
  }
  return false;
}

// Element count of `shape` as the product of its dims, or false when the shape is not representable. Zero dims
// are skipped in the overflow check on purpose: torch still computes contiguous strides from the other dims, so
// e.g. [0, 2^40, 2^40] would overflow inside torch even though numel is 0.
bool checked_numel(const std::vector<int64_t>& shape, uint64_t& numel) {
  uint64_t nonzero = 1;
  bool has_zero = false;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (d == 0) {
      has_zero = true;
      continue;
    }
    if (__builtin_mul_overflow(nonzero, static_cast<uint64_t>(d), &nonzero)) return false;
    if (nonzero > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  }
  numel = has_zero ? 0 : nonzero;
  return true;
}

std::string json_type(const json& j) { return j.type_name(); }

// Reads one header entry into `info`; throws naming the file and the tensor.
void parse_entry(const std::string& path, const std::string& name, const json& entry, uint64_t data_size,
                 TensorInfo& info) {
  auto fail = [&](const std::string& what) {
    return Error(str("safetensors file '", path, "': tensor '", name, "': ", what));
  };
  if (!entry.is_object()) throw fail(str("header entry is a JSON ", json_type(entry), ", expected an object"));
  info.name = name;

  auto dt = entry.find("dtype");
  if (dt == entry.end()) throw fail("header entry has no \"dtype\"");
  if (!dt->is_string()) throw fail(str("\"dtype\" is a JSON ", json_type(*dt), ", expected a string"));
  const auto& dts = dt->get_ref<const std::string&>();
  if (!parse_dtype(dts, info.dtype)) throw fail(str("unknown or unsupported dtype '", dts, "'"));

  auto sh = entry.find("shape");
  if (sh == entry.end()) throw fail("header entry has no \"shape\"");
  if (!sh->is_array()) throw fail(str("\"shape\" is a JSON ", json_type(*sh), ", expected an array"));
  info.shape.clear();
  info.shape.reserve(sh->size());
  for (const auto& d : *sh) {
    if (d.is_number_integer() && !d.is_number_unsigned()) throw fail(str("negative dimension ", d.dump(), " in shape"));
    if (!d.is_number_unsigned()) throw fail(str("shape dimension ", d.dump(), " is not a non-negative integer"));
    uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) throw fail(str("shape dimension ", v, " is too large"));
    info.shape.push_back(static_cast<int64_t>(v));
  }

  auto off = entry.find("data_offsets");
  if (off == entry.end()) throw fail("header entry has no \"data_offsets\"");
  if (!off->is_array() || off->size() != 2)
    throw fail(str("\"data_offsets\" must be an array of two integers, got ", off->dump()));
  for (const auto& o : *off)
    if (!o.is_number_unsigned()) throw fail(str("\"data_offsets\" must hold non-negative integers, got ", off->dump()));
  info.begin = (*off)[0].get<uint64_t>();
  info.end = (*off)[1].get<uint64_t>();
  if (info.begin > info.end) throw fail(str("data_offsets [", info.begin, ", ", info.end, "] have begin > end"));
  if (info.end > data_size)
    throw fail(str("data_offsets [", info.begin, ", ", info.end, "] run past the end of the data section (",
                   data_size, " bytes)"));

  uint64_t numel = 0, nbytes = 0;
  if (!checked_numel(info.shape, numel) || __builtin_mul_overflow(numel, dtype_size(info.dtype), &nbytes))
    throw fail(str("shape ", shape_str(info.shape), " is too large"));
  if (nbytes != info.end - info.begin)
    throw fail(str("shape ", shape_str(info.shape), " x ", dtype_name(info.dtype), " needs ", nbytes,
                   " bytes but data_offsets [", info.begin, ", ", info.end, "] span ", info.end - info.begin));
}


}  // namespace

// ---- dtypes ----------------------------------------------------------------------------------------------------

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
  }
  return "?";
}

size_t dtype_size(DType d) {
  switch (d) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: return 2;
    case DType::I8: case DType::U8: case DType::BOOL: return 1;
  }
  return 0;
}

torch::ScalarType to_torch(DType d) {
  switch (d) {
    case DType::F64: return torch::kFloat64;
    case DType::F32: return torch::kFloat32;
    case DType::F16: return torch::kFloat16;
    case DType::BF16: return torch::kBFloat16;
    case DType::I64: return torch::kInt64;
    case DType::I32: return torch::kInt32;
    case DType::I16: return torch::kInt16;
    case DType::I8: return torch::kInt8;
    case DType::U8: return torch::kUInt8;
    case DType::BOOL: return torch::kBool;
  }
  throw Error("invalid safetensors dtype");
}

DType from_torch(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat64: return DType::F64;
    case torch::kFloat32: return DType::F32;
    case torch::kFloat16: return DType::F16;
    case torch::kBFloat16: return DType::BF16;
    case torch::kInt64: return DType::I64;
    case torch::kInt32: return DType::I32;
    case torch::kInt16: return DType::I16;
    case torch::kInt8: return DType::I8;
    case torch::kUInt8: return DType::U8;
    case torch::kBool: return DType::BOOL;
    default: break;
  }
  throw Error(str("torch dtype ", c10::toString(t), " cannot be stored in a safetensors file"));
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---- File ------------------------------------------------------------------------------------------------------

std::shared_ptr<File> File::open(const std::string& path) {
  // Constructed before anything is mapped so that the destructor unmaps on every error path below.
  std::shared_ptr<File> f(new File());
  f->self_ = f;
  f->path_ = path;
  auto fail = [&](const std::string& what) { return Error(str("safetensors file '", path, "': ", what)); };

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw fail(str("cannot open: ", errno_text(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw fail(str("cannot stat: ", errno_text(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw fail("not a regular file");
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    throw fail(str("truncated: ", file_size, " bytes, shorter than the 8-byte header length"));
  }
  void* map = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);  // the mapping stays valid without the descriptor
  if (map == MAP_FAILED) throw fail(str("cannot memory-map ", file_size, " bytes: ", errno_text(map_err)));
  f->map_ = map;
  f->map_size_ = file_size;
  const auto* bytes = static_cast<const uint8_t*>(map);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > file_size - 8)
    throw fail(str("header length ", header_len, " runs past the end of the file (", file_size, " bytes)"));
  const char* hbegin = reinterpret_cast<const char*>(bytes + 8);
  const uint64_t data_size = file_size - 8 - header_len;
  f->data_ = bytes + 8 + header_len;

  // The reference reader wants the header to be a JSON object from its first byte: no byte-order mark, no leading
  // whitespace (trailing spaces are the writers' alignment padding and are fine).
  if (header_len == 0 || hbegin[0] != '{')
    throw fail(str("bad JSON header: it must start with '{' (expected an object)", header_len >= 3 && std::memcmp(hbegin, "\xEF\xBB\xBF", 3) == 0
                                                                 ? " (it starts with a UTF-8 byte-order mark)"
                                                                 : ""));
  // nlohmann's lexer treats a NUL byte as the end of input and would silently ignore whatever follows it; raw NULs
  // are never valid JSON, so reject them here like the reference reader does.
  if (const void* nul = std::memchr(hbegin, '\0', header_len))
    throw fail(str("bad JSON header: NUL byte at header offset ", static_cast<const char*>(nul) - hbegin));
  json header;
  try {
    // A header is an object of objects of short arrays (depth 3); nesting far deeper is refused while parsing, as
    // printing or copying a value nested 100000 deep recurses that deep and overflows the stack.
    header = json::parse(hbegin, hbegin + header_len,
                         json_depth_limit(kMaxHeaderDepth, fail(str("bad JSON header: values nested more than ",
                                                                     kMaxHeaderDepth, " deep")).what()));
  } catch (const json::exception& e) {
    throw fail(str("bad JSON header: ", e.what()));
  }
  if (!header.is_object()) throw fail(str("JSON header is a ", json_type(header), ", expected an object"));

  f->tensors_.reserve(header.size());
  for (const auto& [name, entry] : header.items()) {
    if (name == kMetadataKey) {
      if (entry.is_null()) continue;
      if (!entry.is_object()) throw fail(str("\"__metadata__\" is a JSON ", json_type(entry), ", expected an object"));
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string())
          throw fail(str("\"__metadata__\" value of '", k, "' is a JSON ", json_type(v), ", expected a string"));
        f->metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    TensorInfo info;
    parse_entry(path, name, entry, data_size, info);
    f->tensors_.push_back(std::move(info));
  }

  // "File order" is the order of the bytes in the data section (ties, i.e. empty tensors, by name). Sorting also
  // makes the overlap check a single O(n log n) pass.
  std::sort(f->tensors_.begin(), f->tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    return a.end != b.end ? a.end < b.end : a.name < b.name;
  });
  // The data section must be exactly the tensors' bytes, back to back, as the reference reader demands: a gap, an
  // overlap or bytes after the last tensor mean the header and the data disagree (a header length off by one byte
  // shifts every tensor by that byte and would otherwise load silently wrong weights).
  uint64_t expected = 0;
  const TensorInfo* prev = nullptr;
  for (const auto& t : f->tensors_) {
    if (t.begin < expected)
      throw fail(str("tensor '", t.name, "' (bytes [", t.begin, ", ", t.end, ")) overlaps tensor '", prev->name,
                     "' (bytes [", prev->begin, ", ", prev->end, "))"));
    if (t.begin > expected)
      throw fail(str("gap of ", t.begin - expected, " bytes before tensor '", t.name, "' (bytes [", t.begin, ", ",
                     t.end, ")): the data section must hold the tensors back to back"));
    expected = t.end;
    if (t.end > t.begin) prev = &t;
  }
  if (expected != data_size)
    throw fail(str(data_size - expected, " bytes after the last tensor (the data section is ", data_size,
                   " bytes, the tensors end at ", expected, "): the header length or the offsets are wrong"));

  for (size_t i = 0; i < f->tensors_.size(); ++i) f->index_.emplace(f->tensors_[i].name, i);
  return f;
}

File::~File() {
  if (map_ && map_ != MAP_FAILED) ::munmap(map_, map_size_);
}

const TensorInfo* File::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

torch::Tensor File::tensor(const std::string& name) const {
  const TensorInfo* info = find(name);
  SPRINT_CHECK(info, "safetensors file '", path_, "' has no tensor '", name, "'");
  auto options = torch::TensorOptions().dtype(to_torch(info->dtype)).device(torch::kCPU);
  if (info->begin == info->end) return torch::empty(info->shape, options);

  const uint8_t* ptr = data_ + info->begin;
  if (info->dtype == DType::BOOL) {
    // torch assumes bool bytes are 0 or 1; anything else would make later ops misbehave.
    for (uint64_t i = 0; i < info->end - info->begin; ++i)
      SPRINT_CHECK(ptr[i] <= 1, "safetensors file '", path_, "': tensor '", name, "': BOOL byte ", i, " has value ",
                   int(ptr[i]), ", expected 0 or 1");
  }
  // A header length that is not a multiple of 8 misaligns the data section; viewing misaligned elements in place
  // is undefined behaviour, so such tensors are copied instead (conforming writers never produce them).
  if (reinterpret_cast<uintptr_t>(ptr) % dtype_size(info->dtype) != 0) {
    auto out = torch::empty(info->shape, options);
    std::memcpy(out.data_ptr(), ptr, info->end - info->begin);
    return out;
  }
  std::shared_ptr<const File> keep = self_.lock();
  SPRINT_CHECK(keep, "safetensors file '", path_, "': tensor() called on a File not created by File::open");
  // The deleter owns a reference to this File, so the mapping outlives every view into it.
  return torch::from_blob(const_cast<uint8_t*>(ptr), info->shape, [keep](void*) {}, options);
}

// ---- Archive ---------------------------------------------------------------------------------------------------

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Picks the file to open inside a folder: the single index, else the single .safetensors file.
std::string resolve_folder(const std::string& folder) {
  std::vector<std::string> indexes, files;
  std::error_code ec;
  fs::directory_iterator it(folder, ec), end;
  SPRINT_CHECK(!ec, "cannot list safetensors folder '", folder, "': ", ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    std::string name = it->path().filename().string();
    if (!it->is_regular_file(ec)) continue;
    if (ends_with(name, ".safetensors.index.json")) indexes.push_back(it->path().string());
    else if (ends_with(name, ".safetensors")) files.push_back(it->path().string());
  }
  SPRINT_CHECK(!ec, "cannot list safetensors folder '", folder, "': ", ec.message());
  std::sort(indexes.begin(), indexes.end());
  std::sort(files.begin(), files.end());
  if (indexes.size() == 1) return indexes[0];
  if (indexes.empty() && files.size() == 1) return files[0];
  SPRINT_CHECK(!(indexes.empty() && files.empty()), "folder '", folder,
               "' holds no *.safetensors or *.safetensors.index.json file");
  std::string list;
  for (const auto& p : indexes.empty() ? files : indexes) list += "\n  " + p;
  throw Error(str("folder '", folder, "' holds several safetensors ", indexes.empty() ? "files" : "index files",
                  "; open one of them directly:", list));
}

}  // namespace

Archive Archive::open(const std::string& path) {
  std::error_code ec;
  auto status = fs::status(path, ec);
  SPRINT_CHECK(!ec && fs::exists(status), "safetensors path '", path, "' does not exist");
  std::string target = fs::is_directory(status) ? resolve_folder(path) : path;

  Archive a;
  a.source_ = target;
  if (!ends_with(target, ".json")) {
    auto f = File::open(target);
    for (const auto& t : f->tensors()) a.where_.emplace(t.name, 0);
    a.files_.push_back(std::move(f));
    return a;
  }

  // Sharded checkpoint: {"metadata": {...}, "weight_map": {"tensor": "shard.safetensors"}}.
  auto fail = [&](const std::string& what) { return Error(str("safetensors index '", target, "': ", what)); };
  std::ifstream in(target, std::ios::binary);
  if (!in) throw fail(str("cannot open: ", errno_text(errno)));
  std::stringstream buf;
  buf << in.rdbuf();
  if (in.bad()) throw fail("read error");
  json index;
  try {
    index = json::parse(buf.str(), json_depth_limit(kMaxHeaderDepth, fail(str("bad JSON: values nested more than ",
                                                                               kMaxHeaderDepth, " deep")).what()));
  } catch (const json::exception& e) {
    throw fail(str("bad JSON: ", e.what()));
  }
  if (!index.is_object()) throw fail(str("JSON is a ", json_type(index), ", expected an object"));
  auto wm = index.find("weight_map");
  if (wm == index.end()) throw fail("no \"weight_map\"");
  if (!wm->is_object()) throw fail(str("\"weight_map\" is a JSON ", json_type(*wm), ", expected an object"));

  const fs::path folder = fs::path(target).parent_path();
  std::map<std::string, size_t> shard_slot;  // shard name as written in the index -> index in files_
  for (const auto& [name, shard] : wm->items()) {
    if (!shard.is_string())
      throw fail(str("weight_map entry of tensor '", name, "' is a JSON ", json_type(shard), ", expected a string"));
    const auto& shard_name = shard.get_ref<const std::string&>();
    auto slot = shard_slot.find(shard_name);
    if (slot == shard_slot.end()) {
      std::string shard_path = (folder / shard_name).string();
      if (!fs::is_regular_file(shard_path, ec))
        throw fail(str("shard '", shard_path, "' (holding tensor '", name, "') is missing"));
      a.files_.push_back(with_context(str("safetensors index '", target, "'"), [&] { return File::open(shard_path); }));
      slot = shard_slot.emplace(shard_name, a.files_.size() - 1).first;
    }
    if (!a.files_[slot->second]->find(name))
      throw fail(str("tensor '", name, "' is listed in the index but absent from shard '",
                     a.files_[slot->second]->path(), "'"));
    a.where_.emplace(name, slot->second);
  }
  return a;
}

std::vector<std::string> Archive::keys() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [name, _] : where_) out.push_back(name);
  return out;
}

bool Archive::contains(const std::string& name) const { return where_.count(name) != 0; }

const TensorInfo& Archive::info(const std::string& name) const {
  auto it = where_.find(name);
  SPRINT_CHECK(it != where_.end(), "safetensors archive '", source_, "' has no tensor '", name, "'");
  return *files_[it->second]->find(name);
}

torch::Tensor Archive::tensor(const std::string& name) const {
  auto it = where_.find(name);
  SPRINT_CHECK(it != where_.end(), "safetensors archive '", source_, "' has no tensor '", name, "'");
  return files_[it->second]->tensor(name);
}

const std::string& Archive::file_of(const std::string& name) const {
  auto it = where_.find(name);
  SPRINT_CHECK(it != where_.end(), "safetensors archive '", source_, "' has no tensor '", name, "'");
  return files_[it->second]->path();
}

// ---- save / load_all -------------------------------------------------------------------------------------------

void save(const std::string& path, const StateDict& tensors, const std::map<std::string, std::string>& metadata) {
  auto fail = [&](const std::string& what) { return Error(str("cannot save safetensors file '", path, "': ", what)); };

  // Header first, from shapes and dtypes only, so GPU tensors are copied to the CPU one at a time while writing.
  std::string header = "{";
  try {
    if (!metadata.empty()) {
      header += str("\"", kMetadataKey, "\":{");
      bool first = true;
      for (const auto& [k, v] : metadata) {
        header += str(first ? "" : ",", json(k).dump(), ":", json(v).dump());
        first = false;
      }
      header += "}";
    }
    uint64_t offset = 0;
    bool first = metadata.empty();
    for (const auto& [name, t] : tensors) {
      if (name.empty() || name == kMetadataKey) throw fail(str("invalid tensor name '", name, "'"));
      if (!t.defined()) throw fail(str("tensor '", name, "' is undefined"));
      if (t.layout() != torch::kStrided) throw fail(str("tensor '", name, "' is not a dense (strided) tensor"));
      DType d = with_context(str("cannot save safetensors file '", path, "': tensor '", name, "'"),
                             [&t = t] { return from_torch(t.scalar_type()); });
      uint64_t nbytes = static_cast<uint64_t>(t.numel()) * dtype_size(d);
      std::string shape = "[";
      for (int64_t i = 0; i < t.dim(); ++i) shape += str(i ? "," : "", t.size(i));
      shape += "]";
      header += str(first ? "" : ",", json(name).dump(), ":{\"dtype\":\"", dtype_name(d), "\",\"shape\":", shape,
                    ",\"data_offsets\":[", offset, ",", offset + nbytes, "]}");
      offset += nbytes;
      first = false;
    }
  } catch (const json::exception& e) {
    // Only dump() of a name or metadata string with invalid UTF-8 can throw here.
    throw fail(str("a tensor name or metadata string is not valid UTF-8: ", e.what()));
  }
  header += "}";
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  header.append((8 - header.size() % 8) % 8, ' ');

  // The target is only touched by the final rename; any failure before it removes the temporary file.
  AtomicFile out(path);
  try {
    uint8_t len_bytes[8];
    uint64_t hl = header.size();
    for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<uint8_t>(hl >> (8 * i));
    out.write(len_bytes, 8);
    out.write(header.data(), header.size());
    for (const auto& [name, t] : tensors) {
      torch::Tensor cpu;
      try {
        cpu = t.detach().to(torch::kCPU).contiguous();
      } catch (const std::exception& e) {
        throw Error(str("cannot copy tensor '", name, "' to the CPU: ", e.what()));
      }
      if (cpu.numel() == 0) continue;
      out.write(cpu.data_ptr(), cpu.nbytes(), str("write of tensor '", name, "'"));
    }
    out.commit();
  } catch (const Error& e) {
    throw fail(e.what());
  }
}

StateDict load_all(const std::string& path) {
  Archive a = Archive::open(path);
  StateDict out;
  for (const auto& name : a.keys()) out.emplace(name, a.tensor(name).clone());
  return out;
}

}  // namespace sprint::safetensors
