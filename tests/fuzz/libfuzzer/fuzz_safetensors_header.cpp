// fuzz_safetensors_header: the input bytes, written to a .safetensors file, go to safetensors::File::open (header
// length, header JSON, dtypes, shapes, offsets, packing); when it accepts the file, every tensor is read through
// File::tensor() and all of its bytes are touched, also after the File itself has been released (the views must
// keep the mapping alive).
#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "sprint/error.h"
#include "sprint/safetensors.h"

namespace st = sprint::safetensors;
using sprint_fuzz::invariant_broken;

namespace {

// Reads every byte of `t` (the sum is returned so the compiler keeps the reads).
uint64_t touch(const torch::Tensor& t) {
  const auto* p = static_cast<const uint8_t*>(t.data_ptr());
  uint64_t sum = 0;
  for (size_t i = 0; i < t.nbytes(); ++i) sum += p[i];
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);  // one fuzzing process per core; no pool threads
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = (sprint_fuzz::scratch_dir() / "input.safetensors").string();
  sprint_fuzz::write_file(path, data, size);

  std::vector<std::pair<torch::Tensor, uint64_t>> views;  // every tensor read, with the sum of its bytes
  try {
    std::shared_ptr<st::File> file = st::File::open(path);
    // What open() accepted: the tensors lie back to back in the data section, in file order, each exactly its
    // shape x dtype bytes long.
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
    const uint64_t data_size = size - 8 - header_len;
    uint64_t expected = 0;
    for (const st::TensorInfo& info : file->tensors()) {
      const int64_t numel = info.numel();
      if (info.begin != expected || info.end < info.begin || info.end > data_size ||
          static_cast<uint64_t>(numel) * st::dtype_size(info.dtype) != info.end - info.begin)
        invariant_broken(sprint::str("File::open accepted tensor '", info.name, "' ", sprint::shape_str(info.shape),
                                     " ", st::dtype_name(info.dtype), " at [", info.begin, ", ", info.end,
                                     ") in a data section of ", data_size, " bytes"));
      expected = info.end;
      if (file->find(info.name) != &info) invariant_broken("File::find does not return the tensor's own entry");
    }
    if (expected != data_size) invariant_broken("File::open accepted bytes after the last tensor");

    for (const st::TensorInfo& info : file->tensors()) {
      try {
        torch::Tensor t = file->tensor(info.name);
        if (t.sizes().vec() != info.shape || t.scalar_type() != st::to_torch(info.dtype) ||
            t.nbytes() != info.end - info.begin)
          invariant_broken(sprint::str("File::tensor('", info.name, "') is ", t.sizes(), " ", t.scalar_type(),
                                       " but the header says ", sprint::shape_str(info.shape), " ",
                                       st::dtype_name(info.dtype)));
        views.emplace_back(t, touch(t));
      } catch (const std::exception&) {
        // A refused tensor (a BOOL byte other than 0 or 1) is a correct outcome.
      }
    }
  } catch (const std::exception&) {
    // Refusing the file with a message is the correct outcome for bad input.
  }
  // The File is gone; its tensors must still be readable and unchanged.
  for (const auto& [t, sum] : views)
    if (touch(t) != sum) invariant_broken("a tensor's bytes changed after its File was released");
  return 0;
}
