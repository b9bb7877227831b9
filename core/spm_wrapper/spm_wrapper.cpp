// libsprint_spm: the C interface of spm_wrapper.h over sentencepiece::SentencePieceProcessor.
//
// Built with -fvisibility=hidden; only the sprint_spm_* functions are exported. Nothing here throws across the
// interface: every entry point catches and turns exceptions into error strings.
#include "spm_wrapper.h"

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

#ifndef SPRINT_SPM_SENTENCEPIECE_VERSION
#define SPRINT_SPM_SENTENCEPIECE_VERSION "unknown"
#endif

struct sprint_spm {
  sentencepiece::SentencePieceProcessor processor;
  int vocab_size = 0;
};

namespace {

char* copy_string(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p == nullptr) return nullptr;
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

void set_error(char** error, const std::string& message) {
  if (error != nullptr) *error = copy_string(message);
}

bool valid_id(const sprint_spm* h, int id) { return h != nullptr && id >= 0 && id < h->vocab_size; }

}  // namespace

extern "C" {

int sprint_spm_api_version(void) { return SPRINT_SPM_API_VERSION; }

const char* sprint_spm_library_version(void) { return SPRINT_SPM_SENTENCEPIECE_VERSION; }

sprint_spm* sprint_spm_create(const char* model_path, char** error) {
  if (error != nullptr) *error = nullptr;
  if (model_path == nullptr) {
    set_error(error, "no model path given");
    return nullptr;
  }
  try {
    auto h = std::make_unique<sprint_spm>();
    const auto status = h->processor.Load(model_path);
    if (!status.ok()) {
      std::string message = status.ToString();
      if (message.find("ParseFromArray") != std::string::npos)
        message = "not a valid SentencePiece model (protobuf parse failed: truncated or corrupt file?) [" + message + "]";
      set_error(error, message);
      return nullptr;
    }
    h->vocab_size = h->processor.GetPieceSize();
    if (h->vocab_size <= 0) {
      set_error(error, "the model has an empty vocabulary");
      return nullptr;
    }
    return h.release();
  } catch (const std::exception& e) {
    set_error(error, std::string("SentencePiece failed to load the model: ") + e.what());
  } catch (...) {
    set_error(error, "SentencePiece failed to load the model (unknown exception)");
  }
  return nullptr;
}

void sprint_spm_destroy(sprint_spm* handle) { delete handle; }

void sprint_spm_free(void* p) { std::free(p); }

int sprint_spm_encode(const sprint_spm* handle, const char* text, size_t len, int32_t** ids, size_t* n_ids,
                      char** error) {
  if (error != nullptr) *error = nullptr;
  if (ids != nullptr) *ids = nullptr;
  if (n_ids != nullptr) *n_ids = 0;
  if (handle == nullptr || ids == nullptr || n_ids == nullptr || (text == nullptr && len > 0)) {
    set_error(error, "sprint_spm_encode: invalid arguments");
    return -1;
  }
  try {
    std::vector<int> out;
    const auto status = handle->processor.Encode(std::string_view(text == nullptr ? "" : text, len), &out);
    if (!status.ok()) {
      set_error(error, status.ToString());
      return -1;
    }
    if (out.empty()) return 0;
    auto* buf = static_cast<int32_t*>(std::malloc(out.size() * sizeof(int32_t)));
    if (buf == nullptr) throw std::bad_alloc();
    for (size_t i = 0; i < out.size(); ++i) buf[i] = static_cast<int32_t>(out[i]);
    *ids = buf;
    *n_ids = out.size();
    return 0;
  } catch (const std::exception& e) {
    set_error(error, std::string("SentencePiece encode failed: ") + e.what());
  } catch (...) {
    set_error(error, "SentencePiece encode failed (unknown exception)");
  }
  return -1;
}

int sprint_spm_decode(const sprint_spm* handle, const int32_t* ids, size_t n_ids, char** text, size_t* len,
                      char** error) {
  if (error != nullptr) *error = nullptr;
  if (text != nullptr) *text = nullptr;
  if (len != nullptr) *len = 0;
  if (handle == nullptr || text == nullptr || (ids == nullptr && n_ids > 0)) {
    set_error(error, "sprint_spm_decode: invalid arguments");
    return -1;
  }
  try {
    std::vector<int> in(n_ids);
    for (size_t i = 0; i < n_ids; ++i) {
      if (!valid_id(handle, ids[i])) {
        set_error(error, "id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                             " is outside the vocabulary [0, " + std::to_string(handle->vocab_size) + ")");
        return -1;
      }
      in[i] = ids[i];
    }
    std::string out;
    const auto status = handle->processor.Decode(in, &out);
    if (!status.ok()) {
      set_error(error, status.ToString());
      return -1;
    }
    char* p = copy_string(out);
    if (p == nullptr) throw std::bad_alloc();
    *text = p;
    if (len != nullptr) *len = out.size();
    return 0;
  } catch (const std::exception& e) {
    set_error(error, std::string("SentencePiece decode failed: ") + e.what());
  } catch (...) {
    set_error(error, "SentencePiece decode failed (unknown exception)");
  }
  return -1;
}

int sprint_spm_vocab_size(const sprint_spm* handle) { return handle == nullptr ? 0 : handle->vocab_size; }

const char* sprint_spm_id_to_piece(const sprint_spm* handle, int id, size_t* len) {
  if (len != nullptr) *len = 0;
  if (!valid_id(handle, id)) return nullptr;
  try {
    // A reference into the loaded model proto: stable while the handle lives.
    const std::string& piece = handle->processor.IdToPiece(id);
    if (len != nullptr) *len = piece.size();
    return piece.c_str();
  } catch (...) {
    return nullptr;
  }
}

int sprint_spm_piece_to_id(const sprint_spm* handle, const char* piece, size_t len) {
  if (handle == nullptr || (piece == nullptr && len > 0)) return -1;
  try {
    return handle->processor.PieceToId(std::string_view(piece == nullptr ? "" : piece, len));
  } catch (...) {
    return handle->processor.unk_id();
  }
}

int sprint_spm_piece_type(const sprint_spm* handle, int id) {
  if (!valid_id(handle, id)) return 0;
  const auto& p = handle->processor;
  if (p.IsControl(id)) return SPRINT_SPM_PIECE_CONTROL;
  if (p.IsUnknown(id)) return SPRINT_SPM_PIECE_UNKNOWN;
  if (p.IsByte(id)) return SPRINT_SPM_PIECE_BYTE;
  if (p.IsUnused(id)) return SPRINT_SPM_PIECE_UNUSED;
  return SPRINT_SPM_PIECE_NORMAL;
}

int sprint_spm_bos_id(const sprint_spm* handle) { return handle == nullptr ? -1 : handle->processor.bos_id(); }
int sprint_spm_eos_id(const sprint_spm* handle) { return handle == nullptr ? -1 : handle->processor.eos_id(); }
int sprint_spm_pad_id(const sprint_spm* handle) { return handle == nullptr ? -1 : handle->processor.pad_id(); }
int sprint_spm_unk_id(const sprint_spm* handle) { return handle == nullptr ? -1 : handle->processor.unk_id(); }

}  // extern "C"
