// safetensors reader and writer.
//
// Format (https://github.com/huggingface/safetensors): 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}},
// then the data section; offsets are relative to the start of the data section.
//
// Reading memory-maps the file and validates the whole header up front: every offset and size is bounds-checked,
// tensors may not overlap, shape x dtype size must equal the byte length. Any violation throws sprint::Error naming
// the file and the tensor. Tensors returned by File::tensor() are zero-copy views into the mapping and keep it alive.
//
// Sharded checkpoints (`*.safetensors.index.json` with a "weight_map") are opened through Archive.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sprint::safetensors {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char* dtype_name(DType d);          // "F32"
size_t dtype_size(DType d);               // bytes per element
torch::ScalarType to_torch(DType d);
DType from_torch(torch::ScalarType t);    // throws for types safetensors cannot hold

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data section
  uint64_t end = 0;
  int64_t numel() const;
};

// One memory-mapped .safetensors file.
class File {
 public:
  static std::shared_ptr<File> open(const std::string& path);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }   // in file order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find(const std::string& name) const;                // nullptr if absent
  // Zero-copy CPU tensor viewing the mapped bytes (read-only memory: clone before writing to it).
  // Throws naming the file if the tensor does not exist.
  torch::Tensor tensor(const std::string& name) const;

 private:
  File() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  std::weak_ptr<File> self_;
};

// All weights of one model: a single file, or the shards of an index. Opening validates every shard.
class Archive {
 public:
  // `path` may be a .safetensors file, a *.safetensors.index.json, or a folder holding exactly one of
  // `<stem>.safetensors` / `<stem>.safetensors.index.json` (or any single *.safetensors file).
  static Archive open(const std::string& path);

  std::vector<std::string> keys() const;  // sorted
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws naming the archive if absent
  torch::Tensor tensor(const std::string& name) const;    // zero-copy; throws naming file and tensor
  const std::string& file_of(const std::string& name) const;
  const std::string& source() const { return source_; }   // what was opened (for messages)
  size_t size() const { return where_.size(); }

 private:
  std::string source_;
  std::vector<std::shared_ptr<File>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index in files_
};

using StateDict = std::map<std::string, torch::Tensor>;

// Writes tensors (any device; contiguous copies are made on the CPU) to `path` atomically: the bytes go to a
// temporary file in the same folder which is fsync'ed and renamed over `path`. A failure (e.g. a full disk)
// leaves any existing `path` untouched and throws naming the file.
void save(const std::string& path, const StateDict& tensors, const std::map<std::string, std::string>& metadata = {});

// Convenience: every tensor of an archive, copied into owned CPU memory.
StateDict load_all(const std::string& path);

}  // namespace sprint::safetensors
