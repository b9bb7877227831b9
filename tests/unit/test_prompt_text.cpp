// Unit tests for core/src/prompt_text.cpp: Python-compatible prompt lower-casing/stripping and diffusers'
// resolution-bin choice.
//
// References (exact: strings compared byte for byte, bins as integers):
//   tests/fixtures/text/cases.json     (fx_text.py): str.lower(), str.strip(), str.lower().strip() of the pinned
//                                      Python 3.11 on Unicode cases (final sigma, dotted I, digraphs, full-width,
//                                      emoji, Unicode whitespace, ...)
//   tests/fixtures/binning/bins.json   (fx_binning.py): PixArtImageProcessor.classify_height_width_bin with the
//                                      512/1024/2048 tables, for a grid of sizes plus ties and odd sizes
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "sprint/config.h"
#include "sprint/error.h"
#include "sprint/pipeline.h"
#include "test_util.h"

using namespace sprint;
using sprint::test::fixture_path;
using sprint::test::throws_with;

namespace {
std::string hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += d[c >> 4];
    out += d[c & 15];
    out += ' ';
  }
  return out;
}
}  // namespace

TEST(PromptText, MatchesPythonLowerAndStrip) {
  auto doc = read_json_file(fixture_path("text/cases.json"));
  ASSERT_EQ(doc.at("python").get<std::string>().rfind("3.11.", 0), 0u) << "fixture made with another Python";
  const auto& cases = doc.at("cases");
  ASSERT_GE(cases.size(), 20u);
  for (const auto& c : cases) {
    const auto in = c.at(0).get<std::string>();
    const auto lower = c.at(1).get<std::string>(), strip = c.at(2).get<std::string>(),
               both = c.at(3).get<std::string>();
    EXPECT_EQ(python_lower(in), lower) << "lower(" << in << ") bytes " << hex(python_lower(in)) << " vs " << hex(lower);
    EXPECT_EQ(python_strip(in), strip) << "strip(" << in << ") bytes " << hex(python_strip(in)) << " vs " << hex(strip);
    EXPECT_EQ(python_lower_strip(in), both) << "lower().strip() of " << in;
  }
}

TEST(PromptText, KnownCasesByteForByte) {
  // Spot checks independent of the fixture file (Python 3.11.7: print(repr(s.lower().strip()))).
  EXPECT_EQ(python_lower_strip("\xC4\xB0stanbul"), "i\xCC\x87stanbul");         // 'İstanbul' -> 'i̇stanbul'
  EXPECT_EQ(python_lower_strip("\xCE\xA3\xCE\x91\xCE\xA3"), "\xCF\x83\xCE\xB1\xCF\x82");  // 'ΣΑΣ' -> 'σας'
  EXPECT_EQ(python_lower_strip("\xE3\x80\x80 A \xC2\xA0"), "a");                  // U+3000 / U+00A0 stripped
  EXPECT_EQ(python_lower_strip("\xF0\x9F\xA6\x8A Fox"), "\xF0\x9F\xA6\x8A fox");  // emoji untouched
}

TEST(PromptText, InvalidUtf8NamesTheByteOffset) {
  EXPECT_TRUE(throws_with([] { python_lower_strip("ab\xFF" "c"); }, {"not valid UTF-8", "byte offset 2", "0xff"}));
  EXPECT_TRUE(throws_with([] { python_lower_strip("abc\xC3"); }, {"truncated", "byte offset 3"}));
  EXPECT_TRUE(throws_with([] { python_lower_strip("x\xC0\x80"); }, {"byte offset 1"}));        // overlong NUL
  EXPECT_TRUE(throws_with([] { python_lower_strip("\xED\xA0\x80"); }, {"byte offset 0"}));     // surrogate
  EXPECT_TRUE(throws_with([] { python_lower_strip("\xF4\x90\x80\x80"); }, {"byte offset 0"}));  // > U+10FFFF
  EXPECT_TRUE(throws_with([] { python_lower_strip("ok \x80"); }, {"continuation", "byte offset 3"}));
  EXPECT_TRUE(throws_with([] { check_utf8("\xE2\x82", "prompt"); }, {"prompt is not valid UTF-8"}));
  EXPECT_NO_THROW(check_utf8("\xF0\x9F\xA6\x8A \xE2\x82\xAC \xC3\xA4", "prompt"));
}

TEST(ResolutionBinning, MatchesDiffusersClassifyHeightWidthBin) {
  auto doc = read_json_file(fixture_path("binning/bins.json"));
  int n = 0;
  for (const auto& [ss, rows] : doc.at("tables").items()) {
    for (const auto& row : rows) {
      const int h = row.at(0), w = row.at(1);
      auto bin = resolution_bin(std::stoi(ss), h, w);
      ASSERT_TRUE(bin.has_value()) << "sample_size " << ss;
      EXPECT_EQ(bin->first, row.at(2).get<int>()) << "sample_size " << ss << " " << h << "x" << w << " (h x w)";
      EXPECT_EQ(bin->second, row.at(3).get<int>()) << "sample_size " << ss << " " << h << "x" << w << " (h x w)";
      ++n;
    }
  }
  EXPECT_GE(n, 3 * 100);
  // No table for other sample sizes (our small models, the tiny test pipeline): generate as requested.
  EXPECT_FALSE(resolution_bin(8, 64, 64).has_value());
  EXPECT_FALSE(resolution_bin(2, 64, 64).has_value());
  EXPECT_FALSE(resolution_bin(128, 4096, 4096).has_value());
}

TEST(PromptText, TokenizePromptsUsesUnicodeLowerCaseAndRejectsInvalidUtf8) {
  auto tok = Tokenizer::load(fixture_path("tokenizer/tokenizer.model"));
  PromptOptions po;
  po.complex_human_instruction = false;
  po.max_sequence_length = 16;
  // Non-ASCII capitals and Unicode whitespace reach the tokenizer folded/stripped, as diffusers' lower().strip().
  auto a = tokenize_prompts(tok, {"\xE3\x80\x80\xC3\x84PFEL \xC3\x9C" "BER \xC2\xA0"}, po);  // '　ÄPFEL ÜBER  '
  auto b = tokenize_prompts(tok, {"\xC3\xA4pfel \xC3\xBC" "ber"}, po);                      // 'äpfel über'
  EXPECT_TRUE(torch::equal(a.input_ids, b.input_ids));
  EXPECT_TRUE(torch::equal(a.attention_mask, b.attention_mask));
  EXPECT_TRUE(throws_with([&] { tokenize_prompts(tok, {"a cat \xC3("}, po); },
                          {"the prompt is not valid UTF-8", "byte offset 6"}));
  EXPECT_TRUE(throws_with([&] { tokenize_prompts(tok, {"ok", "\x80"}, po); }, {"prompt 1 of the batch", "byte offset 0"}));
}
