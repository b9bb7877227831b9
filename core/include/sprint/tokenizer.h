// Gemma's SentencePiece tokenizer (`tokenizer/tokenizer.model` of a SANA pipeline).
//
// SentencePiece itself lives in a separate shared library, libsprint_spm.so (core/spm_wrapper), that is loaded on
// first use with dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND): Debian's libsentencepiece exports a bundled
// protobuf 3.14 that must not meet any other protobuf in the process's global symbol scope. The library is
// searched in this order:
//   1. $SPRINT_SPM_LIBRARY (the .so itself, or a folder holding libsprint_spm.so)
//   2. the folder of the running executable, then its ../lib (build/lib in the build tree, <prefix>/lib installed)
// When none loads, Tokenizer::load throws a sprint::Error listing every path tried and why it failed.
//
// Semantics follow transformers' GemmaTokenizer as the SANA pipeline calls it: encode() optionally prepends BOS,
// never appends EOS; encode_batch() truncates to max_length (BOS kept) and pads with the pad id, padding on the
// right by default (`padding_side="right"`). By default, literal occurrences of the model's control/unknown pieces
// in the text ("<bos>", "<eos>", "<pad>", "<unk>" for Gemma) become those ids, as transformers does for its special
// tokens; pass parse_special = false for plain SentencePiece behaviour (they are then ordinary text). Prompt
// preprocessing (strip, lower-case, instruction prefix) is not done here.
//
// A Tokenizer is a cheap, shareable handle (copies share the loaded model). All const methods may be called
// concurrently from several threads.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sprint {

struct TokenizedBatch {
  torch::Tensor input_ids;       // int64 (B, max_length), padded with the pad id
  torch::Tensor attention_mask;  // int64 (B, max_length): 1 for tokens, 0 for padding
};

class Tokenizer {
 public:
  Tokenizer() = default;  // empty: every method except loaded() throws

  // `tokenizer_dir_or_model_file`: a SentencePiece model file, a folder holding `tokenizer.model`, or a pipeline
  // folder holding `tokenizer/tokenizer.model`. Throws sprint::Error naming the file when it is missing or not a
  // valid SentencePiece model, and listing the paths tried when libsprint_spm.so cannot be loaded.
  static Tokenizer load(const std::string& tokenizer_dir_or_model_file);

  bool loaded() const { return impl_ != nullptr; }
  const std::string& model_path() const;

  // UTF-8 text -> ids; BOS first when add_bos (throws if the model has no BOS). No EOS.
  std::vector<int64_t> encode(const std::string& text, bool add_bos, bool parse_special = true) const;

  // ids -> UTF-8 text. Control ids (BOS, EOS, pad) produce no text, unknown ids " ⁇ " (SentencePiece's rule).
  // Throws for ids outside [0, vocab_size).
  std::string decode(const std::vector<int64_t>& ids) const;

  // Tokenises every text, truncates each to max_length tokens (BOS included, kept) and pads to max_length with
  // pad_id(), on the right (pad_right) or on the left. Like transformers'
  // tokenizer(texts, padding="max_length", max_length=N, truncation=True, add_special_tokens=add_bos).
  TokenizedBatch encode_batch(const std::vector<std::string>& texts, int max_length, bool add_bos,
                              bool pad_right = true, bool parse_special = true) const;

  int64_t vocab_size() const;
  // Special ids as the model file defines them (Gemma: pad 0, eos 1, bos 2, unk 3); -1 where the model has none.
  int64_t bos_id() const;
  int64_t eos_id() const;
  int64_t pad_id() const;
  int64_t unk_id() const;

  std::string id_to_piece(int64_t id) const;         // throws for an id outside the vocabulary
  int64_t piece_to_id(const std::string& piece) const;  // unk_id() when the vocabulary has no such piece

  // Path of the loaded libsprint_spm.so; loads it first if needed (throws like load()).
  static std::string wrapper_library_path();

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
  const Impl& impl() const;
};

}  // namespace sprint
