// Unit tests for core/src/safetensors.cpp: round trips, zero-copy views, sharded archives, atomic saving and one
// test per kind of malformed file (each must throw sprint::Error naming the file and, where relevant, the tensor).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <nlohmann/json.hpp>
#include <string>

#include "sprint/error.h"
#include "sprint/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;
namespace st = sprint::safetensors;
using sprint::test::temp_dir;
using sprint::test::throws_with;

namespace {

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A safetensors file: 8-byte length, `header` verbatim, then `data`.
std::string raw_file(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}

// Writes a raw file named `name` into a fresh temp folder and returns its path.
std::string write_raw(const std::string& tag, const std::string& bytes, const std::string& name = "bad.safetensors") {
  std::string path = temp_dir(tag) + "/" + name;
  write_bytes(path, bytes);
  return path;
}

// Path of the file mapped at address `p` in this process ("" if none), from /proc/self/maps.
std::string mapping_of(const void* p) {
  auto addr = reinterpret_cast<uintptr_t>(p);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::istringstream ls(line);
    std::string range, perms, offset, dev, inode, file;
    ls >> range >> perms >> offset >> dev >> inode;
    std::getline(ls >> std::ws, file);
    auto dash = range.find('-');
    uintptr_t lo = std::stoull(range.substr(0, dash), nullptr, 16);
    uintptr_t hi = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (addr >= lo && addr < hi) return file;
  }
  return "";
}

std::vector<std::string> tmp_leftovers(const std::string& folder) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(folder))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) out.push_back(e.path().string());
  return out;
}

// One tensor of every dtype, including a 0-dim and an empty one, plus a non-contiguous view.
st::StateDict every_dtype() {
  torch::manual_seed(1234);
  st::StateDict d;
  d["f64"] = torch::randn({3, 5}, torch::kFloat64);
  d["f32"] = torch::randn({2, 3, 4});
  d["f16"] = torch::randn({7}).to(torch::kFloat16);
  d["bf16"] = torch::randn({4, 4}).to(torch::kBFloat16);
  d["i64"] = torch::randint(-(int64_t(1) << 62), int64_t(1) << 62, {5}, torch::kInt64);
  d["i32"] = torch::randint(-(int64_t(1) << 30), int64_t(1) << 30, {2, 2}, torch::kInt32);
  d["i16"] = torch::randint(-30000, 30000, {9}, torch::kInt16);
  d["i8"] = torch::randint(-128, 128, {3, 3}, torch::kInt8);
  d["u8"] = torch::randint(0, 256, {11}, torch::kUInt8);
  d["bool"] = torch::randint(0, 2, {13}).to(torch::kBool);
  d["scalar"] = torch::tensor(2.5);
  d["empty"] = torch::zeros({0, 3}, torch::kFloat16);
  d["transposed"] = torch::arange(12, torch::kFloat32).reshape({3, 4}).t();  // non-contiguous
  return d;
}

void expect_same(const st::StateDict& expected, const st::Archive& a) {
  ASSERT_EQ(a.size(), expected.size());
  for (const auto& [name, t] : expected) {
    ASSERT_TRUE(a.contains(name)) << name;
    auto got = a.tensor(name);
    EXPECT_EQ(got.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), t.sizes()) << name;
    EXPECT_TRUE(torch::equal(got, t.cpu())) << name;
  }
}

}  // namespace

// ---- round trips -----------------------------------------------------------------------------------------------

TEST(SafetensorsRoundTrip, EveryDtypeWithMetadata) {
  auto path = temp_dir("st-roundtrip") + "/all.safetensors";
  auto tensors = every_dtype();
  std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "quotes \" and \\ and\nnewline, ü"}};
  st::save(path, tensors, meta);

  auto f = st::File::open(path);
  EXPECT_EQ(f->metadata(), meta);
  EXPECT_EQ(f->tensors().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    const st::TensorInfo* info = f->find(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(st::to_torch(info->dtype), t.scalar_type()) << name;
    EXPECT_EQ(info->numel(), t.numel()) << name;
    EXPECT_EQ(info->end - info->begin, static_cast<uint64_t>(t.numel() * t.element_size())) << name;
  }
  auto scalar = f->tensor("scalar");
  EXPECT_EQ(scalar.dim(), 0);
  EXPECT_EQ(scalar.item<float>(), 2.5f);
  auto empty = f->tensor("empty");
  EXPECT_EQ(empty.sizes(), torch::IntArrayRef({0, 3}));
  expect_same(tensors, st::Archive::open(path));

  auto loaded = st::load_all(path);
  ASSERT_EQ(loaded.size(), tensors.size());
  for (const auto& [name, t] : tensors) EXPECT_TRUE(torch::equal(loaded.at(name), t)) << name;
}

TEST(SafetensorsRoundTrip, FileLayoutMatchesReferenceWriter) {
  auto dir = temp_dir("st-layout");
  st::StateDict d{{"b", torch::ones({3}, torch::kFloat16)}, {"a", torch::ones({2}, torch::kFloat32)},
                  {"c", torch::ones({1}, torch::kInt8)}};
  st::save(dir + "/x.safetensors", d);
  std::string bytes = read_bytes(dir + "/x.safetensors");
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);                          // header padded to a multiple of 8
  EXPECT_EQ(bytes.size(), 8 + n + 8 + 6 + 1);    // contiguous data, no trailing bytes
  std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.find("__metadata__"), std::string::npos);  // no metadata -> no key
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));  // padding is spaces after the object
  // Sorted name order, contiguous offsets.
  EXPECT_NE(header.find(R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})"), std::string::npos) << header;
  EXPECT_NE(header.find(R"("b":{"dtype":"F16","shape":[3],"data_offsets":[8,14]})"), std::string::npos) << header;
  EXPECT_NE(header.find(R"("c":{"dtype":"I8","shape":[1],"data_offsets":[14,15]})"), std::string::npos) << header;
  auto f = st::File::open(dir + "/x.safetensors");
  ASSERT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->tensors()[0].name, "a");
  EXPECT_EQ(f->tensors()[2].name, "c");
  EXPECT_TRUE(f->metadata().empty());
}

TEST(SafetensorsRoundTrip, EmptyStateDict) {
  auto path = temp_dir("st-empty-dict") + "/none.safetensors";
  st::save(path, {});
  auto f = st::File::open(path);
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_EQ(st::Archive::open(path).size(), 0u);
}

TEST(SafetensorsRoundTrip, CudaTensorsAreCopiedToCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto path = temp_dir("st-cuda") + "/cuda.safetensors";
  auto t = torch::randn({4, 8}, torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16));
  st::save(path, {{"w", t}, {"wt", t.t()}});
  auto a = st::Archive::open(path);
  EXPECT_TRUE(torch::equal(a.tensor("w"), t.cpu()));
  EXPECT_TRUE(torch::equal(a.tensor("wt"), t.t().cpu()));
}

TEST(SafetensorsRoundTrip, DtypeHelpers) {
  for (auto d : {st::DType::F64, st::DType::F32, st::DType::F16, st::DType::BF16, st::DType::I64, st::DType::I32,
                 st::DType::I16, st::DType::I8, st::DType::U8, st::DType::BOOL}) {
    EXPECT_EQ(st::from_torch(st::to_torch(d)), d) << st::dtype_name(d);
    EXPECT_EQ(st::dtype_size(d), c10::elementSize(st::to_torch(d))) << st::dtype_name(d);
  }
  EXPECT_STREQ(st::dtype_name(st::DType::BF16), "BF16");
  EXPECT_TRUE(throws_with([] { st::from_torch(torch::kComplexFloat); }, {"ComplexFloat"}));
}

// ---- reading ---------------------------------------------------------------------------------------------------

TEST(SafetensorsRead, ZeroCopyViewIntoMappingKeepsItAlive) {
  auto path = temp_dir("st-zerocopy") + "/z.safetensors";
  st::save(path, {{"a", torch::arange(16, torch::kFloat32)}, {"b", torch::arange(4, torch::kInt64)}});
  const std::string canonical = fs::canonical(path).string();

  torch::Tensor a;
  const void* ptr = nullptr;
  {
    auto f = st::File::open(path);
    a = f->tensor("a");
    auto b = f->tensor("b");
    ptr = a.data_ptr();
    EXPECT_EQ(mapping_of(ptr), canonical);           // the view points into the file mapping
    EXPECT_EQ(f->tensor("a").data_ptr(), ptr);       // no copy per call
    EXPECT_EQ(static_cast<const char*>(b.data_ptr()) - static_cast<const char*>(ptr),
              static_cast<ptrdiff_t>(f->find("b")->begin - f->find("a")->begin));
  }
  // The File is gone but the view still holds the mapping.
  EXPECT_EQ(mapping_of(ptr), canonical);
  EXPECT_TRUE(torch::equal(a, torch::arange(16, torch::kFloat32)));
  a = torch::Tensor();
  EXPECT_NE(mapping_of(ptr), canonical);  // last view released -> unmapped
}

TEST(SafetensorsRead, LoadAllReturnsOwnedWritableCopies) {
  auto path = temp_dir("st-loadall") + "/l.safetensors";
  st::save(path, {{"a", torch::arange(8, torch::kFloat32)}});
  auto d = st::load_all(path);
  auto& a = d.at("a");
  EXPECT_EQ(a.device(), torch::kCPU);
  EXPECT_NE(mapping_of(a.data_ptr()), fs::canonical(path).string());  // owned memory, not the file
  a.add_(1);                                 // would fault on the read-only mapping
  EXPECT_EQ(a[0].item<float>(), 1.0f);
}

TEST(SafetensorsRead, ZeroDimAndEmptyTensors) {
  // Empty tensors may sit at any offset, including the end of the data section and between other tensors.
  std::string header = R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                       R"("e":{"dtype":"F32","shape":[2,0],"data_offsets":[4,4]},)"
                       R"("e2":{"dtype":"I64","shape":[0],"data_offsets":[0,0]},)"
                       R"("tail":{"dtype":"U8","shape":[0,5],"data_offsets":[4,4]}})";
  float v = -1.25f;
  auto path = write_raw("st-zerodim", raw_file(header, std::string(reinterpret_cast<char*>(&v), 4)), "z.safetensors");
  auto f = st::File::open(path);
  auto s = f->tensor("s");
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item<float>(), -1.25f);
  EXPECT_EQ(f->find("s")->numel(), 1);
  EXPECT_EQ(f->tensor("e").sizes(), torch::IntArrayRef({2, 0}));
  EXPECT_EQ(f->tensor("e2").numel(), 0);
  EXPECT_EQ(f->tensor("tail").scalar_type(), torch::kUInt8);
  EXPECT_EQ(f->find("tail")->numel(), 0);
}

TEST(SafetensorsMalformed, GapsTrailingBytesAndByteOrderMarksAreRejected) {
  // As the reference reader: the data section is exactly the tensors' bytes, and the header starts with '{'.
  std::string header = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                       R"("b":{"dtype":"U8","shape":[3],"data_offsets":[5,8]}})";
  std::string data = std::string("\x01\x02", 2) + "GAP" + "\x03\x04\x05";
  EXPECT_TRUE(throws_with([&] { st::File::open(write_raw("st-gaps", raw_file(header, data))); },
                          {"gap of 3 bytes before tensor 'b'"}));
  std::string packed = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                       R"("b":{"dtype":"U8","shape":[3],"data_offsets":[2,5]}})";
  EXPECT_TRUE(throws_with(
      [&] { st::File::open(write_raw("st-trailing", raw_file(packed, "\x01\x02\x03\x04\x05trailing"))); },
      {"8 bytes after the last tensor"}));
  EXPECT_TRUE(throws_with([&] { st::File::open(write_raw("st-bom", raw_file("\xEF\xBB\xBF" + packed, "12345"))); },
                          {"must start with '{'", "byte-order mark"}));
  // The same file, packed, opens; in header order or not, tensors are listed in data order.
  auto f = st::File::open(write_raw("st-packed", raw_file(packed, "\x01\x02\x03\x04\x05")));
  EXPECT_TRUE(torch::equal(f->tensor("b"), torch::tensor({3, 4, 5}, torch::kUInt8)));
  EXPECT_EQ(f->tensors()[0].name, "a");
}

TEST(SafetensorsMalformed, HeaderLengthOneByteShortIsRejectedNotShifted) {
  // A writer pads the header with spaces; a header length one byte short still parses as JSON but moves the data
  // section one byte earlier. Every tensor would read one byte off; the strict layout check refuses the file.
  const std::string header = std::string(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})") + "    ";
  std::string bytes = raw_file(header, "\x01\x02\x03\x04");
  EXPECT_NO_THROW(st::File::open(write_raw("st-short-header", bytes)));
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  --n;
  std::memcpy(bytes.data(), &n, 8);
  EXPECT_TRUE(throws_with([&] { st::File::open(write_raw("st-short-header2", bytes)); },
                          {"1 bytes after the last tensor"}));
}

TEST(SafetensorsRead, TensorsListedInDataOrder) {
  std::string header = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[2,3]},)"
                       R"("b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},)"
                       R"("c":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})";
  auto f = st::File::open(write_raw("st-order", raw_file(header, "xyz")));
  ASSERT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->tensors()[0].name, "c");
  EXPECT_EQ(f->tensors()[1].name, "b");
  EXPECT_EQ(f->tensors()[2].name, "a");
  EXPECT_EQ(f->tensor("a").item<uint8_t>(), 'z');
}

TEST(SafetensorsRead, MisalignedDataSectionIsCopiedNotViewed) {
  // Header of 61 bytes: the data section starts at offset 69, so F32 elements are not 4-byte aligned in memory.
  std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.append(61 - header.size(), ' ');
  float v[2] = {1.5f, -2.0f};
  auto f = st::File::open(write_raw("st-misaligned", raw_file(header, std::string(reinterpret_cast<char*>(v), 8))));
  auto a = f->tensor("a");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data_ptr()) % 4, 0u);
  EXPECT_TRUE(torch::equal(a, torch::tensor({1.5f, -2.0f})));
}

TEST(SafetensorsRead, EmptyHeaderAndNullMetadata) {
  auto f = st::File::open(write_raw("st-emptyhdr", raw_file("{}")));
  EXPECT_TRUE(f->tensors().empty());
  auto g = st::File::open(write_raw("st-nullmeta", raw_file(R"({"__metadata__":null})")));
  EXPECT_TRUE(g->metadata().empty());
}

TEST(SafetensorsRead, MissingTensorNamesFileAndTensor) {
  auto path = temp_dir("st-missing-tensor") + "/m.safetensors";
  st::save(path, {{"present", torch::zeros({1})}});
  auto f = st::File::open(path);
  EXPECT_EQ(f->find("absent"), nullptr);
  EXPECT_TRUE(throws_with([&] { f->tensor("absent"); }, {path, "absent"}));
  auto a = st::Archive::open(path);
  EXPECT_TRUE(throws_with([&] { a.tensor("absent"); }, {path, "absent"}));
  EXPECT_TRUE(throws_with([&] { a.info("absent"); }, {path, "absent"}));
  EXPECT_TRUE(throws_with([&] { a.file_of("absent"); }, {path, "absent"}));
}

TEST(SafetensorsRead, LargeHeaderOpensQuickly) {
  auto path = temp_dir("st-large") + "/many.safetensors";
  st::StateDict d;
  for (int i = 0; i < 4000; ++i) d["blocks." + std::to_string(i) + ".weight"] = torch::full({2}, float(i));
  st::save(path, d);
  auto t0 = std::chrono::steady_clock::now();
  auto a = st::Archive::open(path);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(a.size(), 4000u);
  EXPECT_EQ(a.tensor("blocks.3999.weight")[1].item<float>(), 3999.0f);
  // Generous bound (a few ms in practice); catches accidental quadratic behaviour, not small regressions.
  EXPECT_LT(seconds, 1.0);
}

// ---- malformed files -------------------------------------------------------------------------------------------

TEST(SafetensorsMalformed, MissingFileOrDirectory) {
  auto dir = temp_dir("st-nofile");
  EXPECT_TRUE(throws_with([&] { st::File::open(dir + "/nope.safetensors"); }, {dir + "/nope.safetensors", "No such file"}));
  EXPECT_TRUE(throws_with([&] { st::File::open(dir); }, {dir, "not a regular file"}));
  EXPECT_TRUE(throws_with([&] { st::Archive::open(dir + "/nope.safetensors"); }, {dir + "/nope.safetensors", "does not exist"}));
}

TEST(SafetensorsMalformed, TruncatedShorterThan8Bytes) {
  for (size_t n : {0, 1, 7}) {
    auto path = write_raw("st-trunc", std::string(n, '\x01'));
    EXPECT_TRUE(throws_with([&] { st::File::open(path); }, {path, "truncated"})) << n;
  }
}

TEST(SafetensorsMalformed, HeaderLengthPastEof) {
  std::string bytes = le64(100) + R"({"a":1})";
  auto path = write_raw("st-hdr-eof", bytes);
  EXPECT_TRUE(throws_with([&] { st::File::open(path); }, {path, "header length 100", "past the end"}));
  // A file cut off inside the data section is caught by the offsets check instead.
  std::string header = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  auto cut = write_raw("st-data-eof", raw_file(header, std::string(10, '\0')));
  EXPECT_TRUE(throws_with([&] { st::File::open(cut); }, {cut, "'a'", "past the end of the data section"}));
}

TEST(SafetensorsMalformed, HeaderLengthAbsurdlyLarge) {
  for (uint64_t n : {uint64_t(1) << 63, ~uint64_t(0), ~uint64_t(0) - 7}) {
    auto path = write_raw("st-hdr-huge", le64(n) + "{}");
    EXPECT_TRUE(throws_with([&] { st::File::open(path); }, {path, "header length", std::to_string(n)})) << n;
  }
}

TEST(SafetensorsMalformed, BadJson) {
  for (std::string header : {std::string(R"({"a":{"dtype":"F32",)"), std::string("not json"), std::string(""),
                             std::string("{\"a\":1}\0\0", 9), std::string("{}\0{\"x\":[1]}", 12)}) {
    auto path = write_raw("st-badjson", raw_file(header));
    EXPECT_TRUE(throws_with([&] { st::File::open(path); }, {path, "bad JSON header"})) << header;
  }
}

TEST(SafetensorsMalformed, JsonNotAnObject) {
  for (std::string header : {"[1,2]", "\"str\"", "42", "null"}) {
    auto path = write_raw("st-notobj", raw_file(header));
    EXPECT_TRUE(throws_with([&] { st::File::open(path); }, {path, "expected an object"})) << header;
  }
}

TEST(SafetensorsMalformed, EntryMissingFields) {
  struct Case {
    const char* header;
    const char* needle;
  } cases[] = {
      {R"({"w":{"shape":[1],"data_offsets":[0,4]}})", "no \"dtype\""},
      {R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", "no \"shape\""},
      {R"({"w":{"dtype":"F32","shape":[1]}})", "no \"data_offsets\""},
  };
  for (const auto& c : cases) {
    auto path = write_raw("st-missing-field", raw_file(c.header, std::string(4, '\0')));
    EXPECT_TRUE(throws_with([&] { st::File::open(path); }, {path, "'w'", c.needle})) << c.header;
  }
}

TEST(SafetensorsMalformed, EntryWithWrongJsonTypes) {
  struct Case {
    const char* header;
    const char* needle;
  } cases[] = {
      {R"({"w":[1,2]})", "expected an object"},
      {R"({"w":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", "\"dtype\" is a JSON number"},
      {R"({"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", "\"shape\" is a JSON string"},
      {R"({"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", "not a non-negative integer"},
      {R"({"w":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}})", "not a non-negative integer"},
      {R"({"w":{"dtype":"F32","shape":[1],"data_offsets":{"b":0}}})", "array of two integers"},
      {R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", "array of two integers"},
      {R"({"w":{"dtype":"F32","shape":[1],"data_offsets":["0","4"]}})", "non-negative integers"},
      {R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,4]}})", "non-negative integers"},
  };
  for (const auto& c : cases) {
    auto path = write_raw("st-wrong-type", raw_file(c.header, std::string(8, '\0')));
    EXPECT_TRUE(throws_with([&] { st::File::open(path); }, {path, "'w'", c.needle})) << c.header;
  }
  for (const char* header : {R"({"__metadata__":[1]})", R"({"__metadata__":{"k":1}})"}) {
    auto path = write_raw("st-bad-meta", raw_file(header));
    EXPECT_TRUE(throws_with([&] { st::File::open(path); }, {path, "__metadata__"})) << header;
  }
}

TEST(SafetensorsMalformed, NegativeShapeDim) {
  auto path = write_raw("st-negdim", raw_file(R"({"w":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]}})",
                                              std::string(16, '\0')));
  EXPECT_TRUE(throws_with([&] { st::File::open(path); }, {path, "'w'", "negative dimension -1"}));
}

TEST(SafetensorsMalformed, ShapeTooLarge) {
  // The element count overflows 64 bits: must not wrap around to a small, "matching" byte count.
  auto path = write_raw("st-hugeshape", raw_file(R"({"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})"));
  EXPECT_TRUE(throws_with([&] { st::File::open(path); }, {path, "'w'", "too large"}));
  // Zero elements, but strides would overflow inside torch.
  auto path2 = write_raw("st-hugeshape0", raw_file(R"({"w":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})"));
  EXPECT_TRUE(throws_with([&] { st::File::open(path2); }, {path2, "'w'", "too large"}));
}

TEST(SafetensorsMalformed, OverlappingTensors) {
  std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  auto path = write_raw("st-overlap", raw_file(header, std::string(12, '\0')));
  EXPECT_TRUE(throws_with([&] { st::File::open(path); }, {path, "'a'", "'b'", "overlaps"}));
  // Overlap with a tensor that is not the immediate predecessor in data order.
  std::string header2 = R"({"big":{"dtype":"U8","shape":[10],"data_offsets":[0,10]},)"
                        R"("s1":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},)"
                        R"("s2":{"dtype":"U8","shape":[2],"data_offsets":[8,10]}})";
  auto path2 = write_raw("st-overlap2", raw_file(header2, std::string(10, '\0')));
  EXPECT_TRUE(throws_with([&] { st::File::open(path2); }, {path2, "'big'", "overlaps"}));
  // Identical ranges.
  std::string header3 = R"({"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                        R"("y":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}})";
  auto path3 = write_raw("st-overlap3", raw_file(header3, std::string(2, '\0')));
  EXPECT_TRUE(throws_with([&] { st::File::open(path3); }, {path3, "'x'", "'y'", "overlaps"}));
}

TEST(SafetensorsMalformed, OffsetsPastDataSection) {
  std::string header = R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})";
  auto path = write_raw("st-oob", raw_file(header, std::string(6, '\0')));
  EXPECT_TRUE(throws_with([&] { st::File::open(path); }, {path, "'w'", "[4, 8]", "past the end of the data section"}));
  std::string header2 = R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]}})";
  auto path2 = write_raw("st-oob2", raw_file(header2));
  EXPECT_TRUE(throws_with([&] { st::File::open(path2); }, {path2, "'w'", "past the end of the data section"}));
}

TEST(SafetensorsMalformed, BeginAfterEnd) {
  std::string header = R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[8,4]}})";
  auto path = write_raw("st-begin-end", raw_file(header, std::string(8, '\0')));
  EXPECT_TRUE(throws_with([&] { st::File::open(path); }, {path, "'w'", "begin > end"}));
}

TEST(SafetensorsMalformed, UnknownDtype) {
  for (const char* dt : {"F8_E4M3", "U64", "f32", "COMPLEX"}) {
    std::string header = std::string(R"({"w":{"dtype":")") + dt + R"(","shape":[1],"data_offsets":[0,1]}})";
    auto path = write_raw("st-dtype", raw_file(header, std::string(1, '\0')));
    EXPECT_TRUE(throws_with([&] { st::File::open(path); }, {path, "'w'", std::string("dtype '") + dt + "'"})) << dt;
  }
}

TEST(SafetensorsMalformed, ByteLengthMismatch) {
  std::string header = R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})";
  auto path = write_raw("st-len", raw_file(header, std::string(24, '\0')));
  EXPECT_TRUE(throws_with([&] { st::File::open(path); }, {path, "'w'", "needs 24 bytes", "span 20"}));
  std::string header2 = R"({"s":{"dtype":"F64","shape":[],"data_offsets":[0,4]}})";
  auto path2 = write_raw("st-len0", raw_file(header2, std::string(8, '\0')));
  EXPECT_TRUE(throws_with([&] { st::File::open(path2); }, {path2, "'s'", "needs 8 bytes"}));
}

TEST(SafetensorsMalformed, BoolBytesOtherThanZeroOrOne) {
  std::string header = R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})";
  auto path = write_raw("st-bool", raw_file(header, std::string("\x01\x00\x07", 3)));
  auto f = st::File::open(path);  // the header is fine; the bytes are checked when the tensor is viewed
  EXPECT_TRUE(throws_with([&] { f->tensor("m"); }, {path, "'m'", "value 7"}));
}

TEST(SafetensorsMalformed, RandomCorruptionOnlyThrowsSprintError) {
  // Corrupt bytes of a valid file (mostly in the length and header, where the parsing is) and check that opening
  // and reading either works or throws sprint::Error, never anything else. Run under ASan/UBSan this also checks
  // that no corrupted offset is ever dereferenced.
  auto dir = temp_dir("st-fuzz");
  st::save(dir + "/ok.safetensors", every_dtype(), {{"k", "v"}});
  const std::string good = read_bytes(dir + "/ok.safetensors");
  std::mt19937 rng(42);
  const std::string alphabet = "0123456789-[]{},:\"e. \xff";
  int opened = 0;
  for (int iter = 0; iter < 400; ++iter) {
    std::string bytes = good;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      size_t limit = rng() % 8 == 0 ? bytes.size() : std::min<size_t>(bytes.size(), 8 + 400);
      size_t pos = rng() % limit;
      bytes[pos] = rng() % 2 ? alphabet[rng() % alphabet.size()] : static_cast<char>(rng());
    }
    if (rng() % 10 == 0) bytes.resize(rng() % bytes.size());
    std::string path = dir + "/fuzz.safetensors";
    write_bytes(path, bytes);
    try {
      auto f = st::File::open(path);
      ++opened;
      for (const auto& info : f->tensors()) {
        try {
          f->tensor(info.name).clone();
        } catch (const sprint::Error&) {
        }
      }
    } catch (const sprint::Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << iter << ": non-sprint exception: " << e.what();
    }
  }
  EXPECT_GT(opened, 0);  // some edits (e.g. in padding or data) leave a valid file
}

// ---- sharded archives and folders ------------------------------------------------------------------------------

namespace {

// Two shards plus an index, written by hand. Returns the index path.
std::string write_sharded(const std::string& dir, const st::StateDict& s1, const st::StateDict& s2) {
  st::save(dir + "/model-00001-of-00002.safetensors", s1);
  st::save(dir + "/model-00002-of-00002.safetensors", s2);
  nlohmann::json index;
  index["metadata"] = {{"total_size", 0}};
  for (const auto& [name, _] : s1) index["weight_map"][name] = "model-00001-of-00002.safetensors";
  for (const auto& [name, _] : s2) index["weight_map"][name] = "model-00002-of-00002.safetensors";
  std::string path = dir + "/model.safetensors.index.json";
  write_bytes(path, index.dump(2));
  return path;
}

const st::StateDict kShard1{{"a.weight", torch::arange(6, torch::kFloat32).reshape({2, 3})},
                            {"a.bias", torch::tensor({1, 2}, torch::kInt64)}};
const st::StateDict kShard2{{"b.weight", torch::ones({4}, torch::kBFloat16)}, {"b.flag", torch::tensor(true)}};

}  // namespace

TEST(SafetensorsArchive, ShardedRoundTrip) {
  auto dir = temp_dir("st-sharded");
  auto index = write_sharded(dir, kShard1, kShard2);
  for (const auto& source : {index, dir}) {  // the index itself, or the folder holding it
    auto a = st::Archive::open(source);
    EXPECT_EQ(a.source(), index);
    EXPECT_EQ(a.keys(), (std::vector<std::string>{"a.bias", "a.weight", "b.flag", "b.weight"}));
    st::StateDict all = kShard1;
    all.insert(kShard2.begin(), kShard2.end());
    expect_same(all, a);
    EXPECT_EQ(a.file_of("a.weight"), dir + "/model-00001-of-00002.safetensors");
    EXPECT_EQ(a.file_of("b.flag"), dir + "/model-00002-of-00002.safetensors");
    EXPECT_EQ(a.info("b.weight").dtype, st::DType::BF16);
    EXPECT_FALSE(a.contains("c"));
  }
  auto loaded = st::load_all(dir);
  EXPECT_EQ(loaded.size(), 4u);
  EXPECT_TRUE(torch::equal(loaded.at("a.weight"), kShard1.at("a.weight")));
}

TEST(SafetensorsArchive, IndexFromAnotherWorkingDirectoryResolvesShardsNextToIt) {
  auto dir = temp_dir("st-sharded-rel");
  write_sharded(dir, kShard1, kShard2);
  // A relative index path: shards must resolve against the index's folder, not the working directory.
  auto cwd = fs::current_path();
  fs::current_path(fs::path(dir).parent_path());
  std::string rel = fs::path(dir).filename().string() + "/model.safetensors.index.json";
  st::Archive a;
  try {
    a = st::Archive::open(rel);
  } catch (...) {
    fs::current_path(cwd);
    throw;
  }
  fs::current_path(cwd);
  EXPECT_EQ(a.size(), 4u);
  EXPECT_TRUE(torch::equal(a.tensor("a.bias"), kShard1.at("a.bias")));
}

TEST(SafetensorsArchive, FolderWithSingleFile) {
  auto dir = temp_dir("st-folder-single");
  st::save(dir + "/only.safetensors", kShard1);
  write_bytes(dir + "/config.json", "{}");
  auto a = st::Archive::open(dir);
  EXPECT_EQ(a.source(), dir + "/only.safetensors");
  expect_same(kShard1, a);
}

TEST(SafetensorsArchive, FolderAmbiguousOrEmpty) {
  auto dir = temp_dir("st-folder-ambiguous");
  st::save(dir + "/one.safetensors", kShard1);
  st::save(dir + "/two.safetensors", kShard2);
  EXPECT_TRUE(throws_with([&] { st::Archive::open(dir); }, {dir, "several", "one.safetensors", "two.safetensors"}));

  write_bytes(dir + "/x.safetensors.index.json", R"({"weight_map":{}})");
  write_bytes(dir + "/y.safetensors.index.json", R"({"weight_map":{}})");
  EXPECT_TRUE(throws_with([&] { st::Archive::open(dir); },
                          {dir, "several", "x.safetensors.index.json", "y.safetensors.index.json"}));

  auto empty = temp_dir("st-folder-empty");
  EXPECT_TRUE(throws_with([&] { st::Archive::open(empty); }, {empty, "no *.safetensors"}));
}

TEST(SafetensorsArchive, TruncatedShard) {
  auto dir = temp_dir("st-shard-trunc");
  auto index = write_sharded(dir, kShard1, kShard2);
  std::string shard = dir + "/model-00002-of-00002.safetensors";
  std::string bytes = read_bytes(shard);
  write_bytes(shard, bytes.substr(0, bytes.size() - 3));
  EXPECT_TRUE(throws_with([&] { st::Archive::open(index); }, {index, shard, "past the end of the data section"}));
  write_bytes(shard, bytes.substr(0, 5));
  EXPECT_TRUE(throws_with([&] { st::Archive::open(dir); }, {index, shard, "truncated"}));
}

TEST(SafetensorsArchive, IndexNamesMissingShard) {
  auto dir = temp_dir("st-shard-missing");
  auto index = write_sharded(dir, kShard1, kShard2);
  fs::remove(dir + "/model-00001-of-00002.safetensors");
  EXPECT_TRUE(throws_with([&] { st::Archive::open(index); },
                          {index, dir + "/model-00001-of-00002.safetensors", "missing", "a."}));
}

TEST(SafetensorsArchive, IndexTensorAbsentFromShard) {
  auto dir = temp_dir("st-shard-absent");
  write_sharded(dir, kShard1, kShard2);
  std::string index = dir + "/model.safetensors.index.json";
  auto j = nlohmann::json::parse(read_bytes(index));
  j["weight_map"]["ghost"] = "model-00002-of-00002.safetensors";
  write_bytes(index, j.dump());
  EXPECT_TRUE(throws_with([&] { st::Archive::open(index); },
                          {index, "'ghost'", dir + "/model-00002-of-00002.safetensors", "absent"}));
}

TEST(SafetensorsArchive, BadIndexJson) {
  auto dir = temp_dir("st-index-bad");
  std::string index = dir + "/model.safetensors.index.json";
  struct Case {
    const char* text;
    const char* needle;
  } cases[] = {
      {R"({"weight_map": {"a": )", "bad JSON"},
      {R"([1])", "expected an object"},
      {R"({"metadata": {}})", "no \"weight_map\""},
      {R"({"weight_map": []})", "\"weight_map\" is a JSON array"},
      {R"({"weight_map": {"a": 3}})", "'a'"},
  };
  for (const auto& c : cases) {
    write_bytes(index, c.text);
    EXPECT_TRUE(throws_with([&] { st::Archive::open(index); }, {index, c.needle})) << c.text;
  }
}

// ---- atomic save -----------------------------------------------------------------------------------------------

TEST(SafetensorsSave, MissingFolderThrowsNamingPath) {
  auto path = temp_dir("st-save-nofolder") + "/does/not/exist/x.safetensors";
  EXPECT_TRUE(throws_with([&] { st::save(path, {{"a", torch::zeros({2})}}); }, {path, "No such file or directory"}));
}

TEST(SafetensorsSave, ReplacesExistingFile) {
  auto dir = temp_dir("st-save-replace");
  auto path = dir + "/x.safetensors";
  st::save(path, {{"old", torch::zeros({100})}});
  auto before = st::File::open(path);  // an open mapping of the old file stays valid after the rename
  st::save(path, {{"new", torch::ones({3})}}, {{"v", "2"}});
  auto a = st::Archive::open(path);
  EXPECT_EQ(a.keys(), std::vector<std::string>{"new"});
  EXPECT_EQ(st::File::open(path)->metadata().at("v"), "2");
  EXPECT_TRUE(torch::equal(before->tensor("old"), torch::zeros({100})));
  EXPECT_TRUE(tmp_leftovers(dir).empty());
}

TEST(SafetensorsSave, TargetIsDirectoryFailsAndLeavesItUntouched) {
  auto dir = temp_dir("st-save-isdir");
  auto target = dir + "/target.safetensors";
  fs::create_directories(target);
  write_bytes(target + "/keep.txt", "keep");
  EXPECT_TRUE(throws_with([&] { st::save(target, {{"a", torch::zeros({4})}}); }, {target, "rename"}));
  EXPECT_TRUE(fs::is_directory(target));
  EXPECT_EQ(read_bytes(target + "/keep.txt"), "keep");
  EXPECT_EQ(std::distance(fs::directory_iterator(target), fs::directory_iterator()), 1);
  EXPECT_TRUE(tmp_leftovers(dir).empty());
}

TEST(SafetensorsSave, InvalidInputsThrowAndLeaveOldFile) {
  auto dir = temp_dir("st-save-invalid");
  auto path = dir + "/x.safetensors";
  st::save(path, {{"keep", torch::ones({2})}});
  const std::string original = read_bytes(path);
  EXPECT_TRUE(throws_with([&] { st::save(path, {{"c", torch::zeros({2}, torch::kComplexFloat)}}); },
                          {path, "'c'", "ComplexFloat"}));
  EXPECT_TRUE(throws_with([&] { st::save(path, {{"u", torch::Tensor()}}); }, {path, "'u'", "undefined"}));
  EXPECT_TRUE(throws_with([&] { st::save(path, {{"__metadata__", torch::zeros({1})}}); }, {path, "__metadata__"}));
  EXPECT_TRUE(throws_with([&] { st::save(path, {{"bad\xff", torch::zeros({1})}}); }, {path, "UTF-8"}));
  EXPECT_TRUE(throws_with([&] { st::save(path, {{"s", torch::zeros({2, 2}).to_sparse()}}); }, {path, "'s'", "dense"}));
  EXPECT_EQ(read_bytes(path), original);
  EXPECT_TRUE(tmp_leftovers(dir).empty());
}

// ---- compatibility with the Python `safetensors` package ---------------------------------------------------------

TEST(SafetensorsPython, ReadsPythonWrittenFileExactly) {
  // Written by tests/fixtures/safetensors/make_python_written.py (safetensors 0.8.0); same formulas here.
  auto path = sprint::test::fixture_path("safetensors/python_written.safetensors");
  auto f = st::File::open(path);
  EXPECT_EQ(f->metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"writer", "safetensors-python"}}));
  EXPECT_EQ(f->tensors().size(), 7u);

  auto ar = [](int64_t n) { return torch::arange(n, torch::kFloat32); };
  st::StateDict expected{
      {"f32", ((ar(12) - 5) * 0.25).reshape({3, 4})},
      {"bf16", (ar(8) * 0.5 - 2).to(torch::kBFloat16).reshape({2, 2, 2})},
      {"i64", (torch::arange(6, torch::kInt64) - 3) * (int64_t(1) << 40) + torch::arange(6, torch::kInt64)},
      {"bool", torch::arange(7).remainder(3) == 0},
      {"f16", (ar(6) / 8 - 0.5).to(torch::kFloat16).reshape({2, 3})},
      {"scalar", torch::tensor(3.5f)},
      {"empty", torch::zeros({0, 4})},
  };
  expect_same(expected, st::Archive::open(path));
  // A few literal values, independent of the formulas above.
  EXPECT_EQ(f->tensor("f32")[0][0].item<float>(), -1.25f);
  EXPECT_EQ(f->tensor("i64")[0].item<int64_t>(), -3 * (int64_t(1) << 40));
  EXPECT_EQ(f->tensor("i64")[5].item<int64_t>(), 2 * (int64_t(1) << 40) + 5);
  EXPECT_EQ(f->tensor("bf16")[1][1][1].item<float>(), 1.5f);
  EXPECT_EQ(f->tensor("f16")[1][2].item<float>(), 0.125f);
  EXPECT_TRUE(f->tensor("bool")[6].item<bool>());
  EXPECT_FALSE(f->tensor("bool")[1].item<bool>());
  EXPECT_EQ(f->find("i64")->begin, 0u);  // the Python writer puts 8-byte dtypes first
}
