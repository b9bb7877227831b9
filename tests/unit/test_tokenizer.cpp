// Unit tests for core/src/tokenizer.cpp and libsprint_spm (core/spm_wrapper).
//
// Reference: tests/fixtures/tokenizer/ (fx_tokenizer.py): a small Gemma-style SentencePiece BPE model and, for a set
// of prompts, the ids of Python's sentencepiece and of transformers' GemmaTokenizer, plus padded batches as the SANA
// pipeline requests them. Also checks that SentencePiece stays out of the global symbol scope and that LibTorch
// keeps working in the same process, including with a foreign protobuf preloaded (child process).
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/torch.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sprint/error.h"
#include "sprint/tokenizer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;
using sprint::Tokenizer;
using sprint::test::fixture_path;
using sprint::test::temp_dir;
using sprint::test::throws_with;

namespace {

std::string model_file() { return fixture_path("tokenizer/tokenizer.model"); }

const json& expected() {
  static const json doc = [] {
    std::ifstream in(fixture_path("tokenizer/expected.json"));
    if (!in) throw std::runtime_error("cannot open " + fixture_path("tokenizer/expected.json"));
    return json::parse(in);
  }();
  return doc;
}

const Tokenizer& tokenizer() {
  static const Tokenizer tok = Tokenizer::load(model_file());
  return tok;
}

std::vector<int64_t> ids_of(const json& j) { return j.get<std::vector<int64_t>>(); }

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string write_file(const std::string& tag, const std::string& name, const std::string& bytes) {
  std::string path = temp_dir(tag) + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

torch::Tensor tensor_2d(const json& rows) {
  std::vector<int64_t> flat;
  for (const auto& r : rows)
    for (const auto& v : r) flat.push_back(v.get<int64_t>());
  const auto n = static_cast<int64_t>(rows.size());
  return torch::tensor(flat, torch::kInt64).reshape({n, n > 0 ? static_cast<int64_t>(flat.size()) / n : 0});
}

std::string quote(const std::string& s) { return "'" + s + "'"; }

// Runs this test executable again with `env` prefixed ("NAME=value ...") and a gtest filter; returns the exit code
// and fills `output` with its stdout + stderr.
int run_child(const std::string& env, const std::string& filter, std::string& output, bool disabled = false) {
  const std::string exe = fs::read_symlink("/proc/self/exe").string();
  const std::string log = temp_dir("tok-child") + "/out.txt";
  std::string cmd = env + " " + quote(exe) + " --gtest_filter=" + quote(filter) +
                    (disabled ? " --gtest_also_run_disabled_tests" : "") + " > " + quote(log) + " 2>&1";
  int rc = std::system(cmd.c_str());
  output = read_bytes(log);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + (WIFSIGNALED(rc) ? WTERMSIG(rc) : 0);
}

}  // namespace

// ---- loading and vocabulary ---------------------------------------------------------------------------------------

TEST(TokenizerTest, LoadsFromFileFolderAndPipelineFolder) {
  Tokenizer from_file = Tokenizer::load(model_file());
  EXPECT_TRUE(from_file.loaded());
  EXPECT_EQ(from_file.model_path(), model_file());

  Tokenizer from_dir = Tokenizer::load(fixture_path("tokenizer"));
  EXPECT_EQ(fs::path(from_dir.model_path()).filename(), "tokenizer.model");
  EXPECT_EQ(from_dir.encode("a cat", true), from_file.encode("a cat", true));

  // A pipeline folder: <root>/tokenizer/tokenizer.model.
  std::string root = temp_dir("tok-pipeline");
  fs::create_directories(fs::path(root) / "tokenizer");
  fs::copy_file(model_file(), fs::path(root) / "tokenizer" / "tokenizer.model");
  Tokenizer from_root = Tokenizer::load(root);
  EXPECT_EQ(from_root.encode("a cat", true), from_file.encode("a cat", true));
}

TEST(TokenizerTest, SpecialIdsComeFromTheModel) {
  const auto& m = expected()["model"];
  const Tokenizer& tok = tokenizer();
  EXPECT_EQ(tok.vocab_size(), m["vocab_size"].get<int64_t>());
  // Gemma's layout, which the fixture model reproduces.
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.bos_id(), 2);
  EXPECT_EQ(tok.unk_id(), 3);
  EXPECT_EQ(tok.pad_id(), m["pad_id"].get<int64_t>());
  EXPECT_EQ(tok.eos_id(), m["eos_id"].get<int64_t>());
  EXPECT_EQ(tok.bos_id(), m["bos_id"].get<int64_t>());
  EXPECT_EQ(tok.unk_id(), m["unk_id"].get<int64_t>());
  EXPECT_EQ(tok.id_to_piece(0), "<pad>");
  EXPECT_EQ(tok.id_to_piece(1), "<eos>");
  EXPECT_EQ(tok.id_to_piece(2), "<bos>");
  EXPECT_EQ(tok.id_to_piece(3), "<unk>");
  EXPECT_EQ(tok.piece_to_id("<start_of_turn>"), 4);
  EXPECT_EQ(tok.piece_to_id("<0x41>"), tok.piece_to_id("<0x40>") + 1);
  EXPECT_EQ(tok.piece_to_id("no such piece in the vocabulary"), tok.unk_id());
  EXPECT_TRUE(throws_with([&] { tok.id_to_piece(tok.vocab_size()); }, {"outside the vocabulary"}));
  EXPECT_TRUE(throws_with([&] { tok.id_to_piece(-1); }, {"outside the vocabulary"}));
}

// ---- encoding -----------------------------------------------------------------------------------------------------

TEST(TokenizerTest, EncodeMatchesSentencePiece) {
  const Tokenizer& tok = tokenizer();
  ASSERT_GE(expected()["prompts"].size(), 12u);
  for (const auto& p : expected()["prompts"]) {
    const std::string text = p["text"].get<std::string>();
    const std::string name = p["name"].get<std::string>();
    std::vector<int64_t> ids = tok.encode(text, /*add_bos=*/false, /*parse_special=*/false);
    EXPECT_EQ(ids, ids_of(p["ids"])) << name;
    std::vector<std::string> pieces;
    for (int64_t id : ids) pieces.push_back(tok.id_to_piece(id));
    EXPECT_EQ(pieces, p["pieces"].get<std::vector<std::string>>()) << name;
    // With BOS: the same ids behind it.
    std::vector<int64_t> with_bos = tok.encode(text, true, false);
    ASSERT_FALSE(with_bos.empty()) << name;
    EXPECT_EQ(with_bos.front(), tok.bos_id()) << name;
    EXPECT_EQ(std::vector<int64_t>(with_bos.begin() + 1, with_bos.end()), ids) << name;
  }
}

TEST(TokenizerTest, EncodeMatchesTransformers) {
  const Tokenizer& tok = tokenizer();
  int checked = 0;
  for (const auto& p : expected()["prompts"]) {
    if (p["hf_ids"].is_null()) continue;
    ++checked;
    EXPECT_EQ(tok.encode(p["text"].get<std::string>(), /*add_bos=*/true), ids_of(p["hf_ids"]))
        << p["name"].get<std::string>();
  }
  if (checked == 0) GTEST_SKIP() << "fixture has no transformers ids (regenerated without transformers)";
}

TEST(TokenizerTest, LiteralSpecialPiecesFollowTransformersByDefault) {
  const Tokenizer& tok = tokenizer();
  // transformers maps "<bos>", "<eos>", "<unk>", "<pad>" in the text to their ids; SentencePiece treats them as text.
  EXPECT_EQ(tok.encode("<bos>", false), std::vector<int64_t>{tok.bos_id()});
  EXPECT_EQ(tok.encode("<eos><pad><unk>", false), (std::vector<int64_t>{1, 0, 3}));
  EXPECT_GT(tok.encode("<bos>", false, /*parse_special=*/false).size(), 1u);
  // A near miss stays text; user-defined pieces are SentencePiece's own business either way.
  EXPECT_EQ(tok.encode("<bo s>", false), tok.encode("<bo s>", false, false));
  EXPECT_EQ(tok.encode("<start_of_turn>x", false), tok.encode("<start_of_turn>x", false, false));
  EXPECT_EQ(tok.encode("<start_of_turn>", false).front(), tok.piece_to_id("<start_of_turn>"));
}

TEST(TokenizerTest, EmptyTextGivesOnlyBos) {
  const Tokenizer& tok = tokenizer();
  EXPECT_TRUE(tok.encode("", false).empty());
  EXPECT_EQ(tok.encode("", true), std::vector<int64_t>{tok.bos_id()});
}

// ---- batches --------------------------------------------------------------------------------------------------------

TEST(TokenizerTest, BatchPaddingMaskAndTruncationMatchReference) {
  const Tokenizer& tok = tokenizer();
  ASSERT_FALSE(expected()["batches"].empty());
  for (const auto& b : expected()["batches"]) {
    const auto texts = b["texts"].get<std::vector<std::string>>();
    const int max_length = b["max_length"].get<int>();
    sprint::TokenizedBatch out = tok.encode_batch(texts, max_length, /*add_bos=*/true);
    const auto rows = static_cast<int64_t>(texts.size());
    ASSERT_EQ(out.input_ids.sizes(), (torch::IntArrayRef{rows, max_length}));
    ASSERT_EQ(out.attention_mask.sizes(), (torch::IntArrayRef{rows, max_length}));
    EXPECT_EQ(out.input_ids.scalar_type(), torch::kInt64);
    EXPECT_EQ(out.attention_mask.scalar_type(), torch::kInt64);
    EXPECT_TRUE(torch::equal(out.input_ids, tensor_2d(b["input_ids"])))
        << "source " << b["source"] << "\n" << out.input_ids << "\nexpected\n" << tensor_2d(b["input_ids"]);
    EXPECT_TRUE(torch::equal(out.attention_mask, tensor_2d(b["attention_mask"])))
        << out.attention_mask << "\nexpected\n" << tensor_2d(b["attention_mask"]);
  }
}

TEST(TokenizerTest, BatchEdgeCases) {
  const Tokenizer& tok = tokenizer();
  const std::string long_text = expected()["prompts"].back()["text"].get<std::string>();
  const std::vector<int64_t> full = tok.encode(long_text, true);
  ASSERT_GT(full.size(), 40u);

  // Truncation keeps BOS and the head of the prompt.
  auto t = tok.encode_batch({long_text}, 10, true);
  EXPECT_TRUE(torch::equal(t.input_ids[0], torch::tensor(std::vector<int64_t>(full.begin(), full.begin() + 10))));
  EXPECT_EQ(t.attention_mask.sum().item<int64_t>(), 10);

  // Exactly max_length tokens: no padding, no truncation.
  const auto n = static_cast<int>(tok.encode("a cat", true).size());
  auto exact = tok.encode_batch({"a cat"}, n, true);
  EXPECT_EQ(exact.attention_mask.sum().item<int64_t>(), n);

  // Left padding puts the same tokens at the end.
  auto right = tok.encode_batch({"a cat", ""}, 8, true, /*pad_right=*/true);
  auto left = tok.encode_batch({"a cat", ""}, 8, true, /*pad_right=*/false);
  for (int64_t r = 0; r < 2; ++r) {
    const int64_t k = right.attention_mask[r].sum().item<int64_t>();
    EXPECT_EQ(left.attention_mask[r].sum().item<int64_t>(), k);
    EXPECT_TRUE(torch::equal(left.input_ids[r].slice(0, 8 - k), right.input_ids[r].slice(0, 0, k)));
    EXPECT_TRUE((left.input_ids[r].slice(0, 0, 8 - k) == tok.pad_id()).all().item<bool>());
    EXPECT_TRUE((left.attention_mask[r].slice(0, 0, 8 - k) == 0).all().item<bool>());
  }

  // Without BOS, an empty prompt is all padding.
  auto no_bos = tok.encode_batch({""}, 4, false);
  EXPECT_EQ(no_bos.attention_mask.sum().item<int64_t>(), 0);
  EXPECT_TRUE((no_bos.input_ids == tok.pad_id()).all().item<bool>());

  auto none = tok.encode_batch({}, 5, true);
  EXPECT_EQ(none.input_ids.sizes(), (torch::IntArrayRef{0, 5}));

  EXPECT_TRUE(throws_with([&] { tok.encode_batch({"x"}, 0, true); }, {"max_length"}));
  EXPECT_TRUE(throws_with([&] { tok.encode_batch({"x"}, -3, true); }, {"max_length"}));
}

// ---- decoding -------------------------------------------------------------------------------------------------------

TEST(TokenizerTest, DecodeRoundTrips) {
  const Tokenizer& tok = tokenizer();
  for (const auto& p : expected()["prompts"]) {
    const std::string text = p["text"].get<std::string>();
    const std::string name = p["name"].get<std::string>();
    EXPECT_EQ(tok.decode(ids_of(p["ids"])), p["decoded"].get<std::string>()) << name;
    EXPECT_EQ(tok.decode(tok.encode(text, false, false)), text) << name;
    // BOS and padding decode to nothing.
    std::vector<int64_t> padded = tok.encode(text, true, false);
    padded.insert(padded.end(), 3, tok.pad_id());
    EXPECT_EQ(tok.decode(padded), text) << name;
  }
  EXPECT_EQ(tok.decode({}), "");
}

TEST(TokenizerTest, DecodeRejectsIdsOutsideTheVocabulary) {
  const Tokenizer& tok = tokenizer();
  EXPECT_TRUE(throws_with([&] { tok.decode({5, tok.vocab_size()}); }, {"outside the vocabulary", "position 1"}));
  EXPECT_TRUE(throws_with([&] { tok.decode({-1}); }, {"outside the vocabulary"}));
}

// ---- threads --------------------------------------------------------------------------------------------------------

TEST(TokenizerTest, ConcurrentEncodeAndDecodeAgree) {
  const Tokenizer tok = tokenizer();  // a copy shares the model
  std::vector<std::string> texts;
  std::vector<std::vector<int64_t>> want;
  std::vector<std::string> want_text;  // decode(want): differs from the text where literal "<bos>" etc. became ids
  for (const auto& p : expected()["prompts"]) {
    texts.push_back(p["text"].get<std::string>());
    want.push_back(tok.encode(texts.back(), true));
    want_text.push_back(tok.decode(want.back()));
  }
  std::vector<int> mismatches(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int it = 0; it < 40; ++it) {
        for (size_t i = 0; i < texts.size(); ++i) {
          const size_t k = (i + static_cast<size_t>(t)) % texts.size();
          if (tok.encode(texts[k], true) != want[k]) ++mismatches[t];
          if (tok.decode(want[k]) != want_text[k]) ++mismatches[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

// ---- errors ---------------------------------------------------------------------------------------------------------

TEST(TokenizerErrors, MissingModelFileIsNamed) {
  const std::string path = temp_dir("tok-missing") + "/nope.model";
  EXPECT_TRUE(throws_with([&] { Tokenizer::load(path); }, {path, "does not exist"}));
}

TEST(TokenizerErrors, FolderWithoutModelIsNamed) {
  const std::string dir = temp_dir("tok-emptydir");
  EXPECT_TRUE(throws_with([&] { Tokenizer::load(dir); }, {dir, "tokenizer.model"}));
  // Only a tokenizer.json: the message says the .model is needed.
  const std::string json_dir = fs::path(write_file("tok-jsononly", "tokenizer.json", "{}")).parent_path().string();
  EXPECT_TRUE(throws_with([&] { Tokenizer::load(json_dir); }, {json_dir, "only tokenizer.json"}));
}

TEST(TokenizerErrors, TruncatedModelIsNamed) {
  const std::string bytes = read_bytes(model_file());
  ASSERT_GT(bytes.size(), 1000u);
  for (size_t keep : {bytes.size() / 2, bytes.size() - 7, size_t{3}}) {
    const std::string path = write_file("tok-trunc", "truncated.model", bytes.substr(0, keep));
    EXPECT_TRUE(throws_with([&] { Tokenizer::load(path); }, {path, "not a valid SentencePiece model"})) << "kept " << keep;
  }
}

TEST(TokenizerErrors, RandomBytesAreNamed) {
  std::mt19937 rng(1234);
  for (size_t size : {size_t{16}, size_t{4096}, size_t{50000}}) {
    std::string bytes(size, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng() & 0xff);
    const std::string path = write_file("tok-random", "random.model", bytes);
    EXPECT_TRUE(throws_with([&] { Tokenizer::load(path); }, {path})) << size << " bytes";
  }
}

TEST(TokenizerErrors, EmptyFileIsNamed) {
  const std::string path = write_file("tok-emptyfile", "empty.model", "");
  EXPECT_TRUE(throws_with([&] { Tokenizer::load(path); }, {path, "is empty"}));
}

TEST(TokenizerErrors, UnloadedTokenizerThrows) {
  Tokenizer tok;
  EXPECT_FALSE(tok.loaded());
  EXPECT_TRUE(throws_with([&] { tok.encode("x", true); }, {"not loaded"}));
  EXPECT_TRUE(throws_with([&] { tok.vocab_size(); }, {"not loaded"}));
}

// ---- isolation from LibTorch and other protobufs ----------------------------------------------------------------------

TEST(TokenizerIsolation, LibTorchWorksAfterTheTokenizerLoaded) {
  const Tokenizer& tok = tokenizer();
  const auto& first = expected()["prompts"][0];
  ASSERT_FALSE(tok.encode(first["text"].get<std::string>(), true).empty());
  torch::manual_seed(0);
  auto a = torch::randn({64, 32});
  auto b = torch::randn({32, 16});
  auto c = torch::matmul(a, b);
  auto ref = (a.to(torch::kFloat64).unsqueeze(2) * b.to(torch::kFloat64).unsqueeze(0)).sum(1);
  EXPECT_EQ(c.sizes(), (torch::IntArrayRef{64, 16}));
  EXPECT_LT((c.to(torch::kFloat64) - ref).abs().max().item<double>(), 1e-4);
  // And the tokenizer still works after LibTorch ran.
  EXPECT_EQ(tok.encode(first["text"].get<std::string>(), false, false), ids_of(first["ids"]));
}

TEST(TokenizerIsolation, SentencePieceStaysOutOfTheGlobalScope) {
  tokenizer();
  const std::string lib = Tokenizer::wrapper_library_path();
  EXPECT_EQ(fs::path(lib).filename(), "libsprint_spm.so");
  EXPECT_TRUE(fs::exists(lib)) << lib;
  // RTLD_LOCAL: neither the wrapper's C API nor SentencePiece's classes are visible process-wide.
  EXPECT_EQ(dlsym(RTLD_DEFAULT, "sprint_spm_create"), nullptr);
  EXPECT_EQ(dlsym(RTLD_DEFAULT, "_ZN13sentencepiece22SentencePieceProcessorC1Ev"), nullptr);
  EXPECT_EQ(dlsym(RTLD_DEFAULT, "_ZN6google8protobuf8internal13VerifyVersionEiiPKc"), nullptr);
  // The wrapper exports its C API and nothing of C++ (-fvisibility=hidden).
  void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(h, nullptr);
  EXPECT_NE(dlsym(h, "sprint_spm_encode"), nullptr);
  dlclose(h);
}

// Debian's libsentencepiece exports a bundled protobuf 3.14. Linked directly, a system libprotobuf loaded earlier in
// the process (here: LD_PRELOAD) takes over its symbols and SentencePiece aborts on its protobuf version check when
// a model loads. Loaded through the RTLD_DEEPBIND wrapper it keeps its own copy.
TEST(TokenizerIsolation, SurvivesAForeignProtobufInTheProcess) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // Sanitizer builds load the wrapper without RTLD_DEEPBIND, and their runtime must come first in LD_PRELOAD.
  GTEST_SKIP() << "not meaningful in a sanitizer build";
#endif
  std::string protobuf;
  for (const char* dir : {"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("libprotobuf.so.", 0) == 0 && protobuf.empty()) protobuf = e.path().string();
    }
  }
  if (protobuf.empty()) GTEST_SKIP() << "no system libprotobuf.so.* to preload";
  std::string out;
  const int rc = run_child("LD_PRELOAD=" + quote(protobuf),
                           "TokenizerTest.EncodeMatchesSentencePiece:TokenizerIsolation.LibTorchWorks*", out);
  EXPECT_EQ(rc, 0) << "with LD_PRELOAD=" << protobuf << ":\n" << out;
  EXPECT_NE(out.find("[  PASSED  ] 2 tests"), std::string::npos) << out;
}

// Run only in a child process by the next test: checks that $SPRINT_SPM_LIBRARY takes precedence.
TEST(TokenizerChild, DISABLED_ReportsWrapperPath) {
  const char* want = std::getenv("SPRINT_SPM_LIBRARY");
  ASSERT_NE(want, nullptr);
  EXPECT_EQ(Tokenizer::wrapper_library_path(), fs::path(want).lexically_normal().string());
  EXPECT_EQ(tokenizer().encode("a cat", true), Tokenizer::load(model_file()).encode("a cat", true));
}

TEST(TokenizerIsolation, EnvironmentVariableSelectsTheWrapper) {
  const std::string lib = Tokenizer::wrapper_library_path();
  const std::string copy = temp_dir("tok-envlib") + "/libsprint_spm.so";
  fs::copy_file(lib, copy);
  std::string out;
  const int rc = run_child("SPRINT_SPM_LIBRARY=" + quote(copy), "TokenizerChild.DISABLED_ReportsWrapperPath", out,
                           /*disabled=*/true);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("[  PASSED  ] 1 test"), std::string::npos) << out;
}
