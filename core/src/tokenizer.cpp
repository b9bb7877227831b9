// sprint::Tokenizer: loads libsprint_spm.so (core/spm_wrapper) at run time and drives SentencePiece through its
// C interface. See tokenizer.h for why SentencePiece is never linked into sprint_core.
#include "sprint/tokenizer.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <type_traits>
#include <utility>

#include "../spm_wrapper/spm_wrapper.h"
#include "sprint/error.h"

namespace fs = std::filesystem;

namespace sprint {
namespace {

constexpr const char* kLibraryName = "libsprint_spm.so";
constexpr const char* kModelName = "tokenizer.model";

// Sanitizer runtimes refuse RTLD_DEEPBIND (it would bypass their interceptors); such builds load without it.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SPRINT_SPM_NO_DEEPBIND 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define SPRINT_SPM_NO_DEEPBIND 1
#endif
#endif

#ifdef SPRINT_SPM_NO_DEEPBIND
constexpr int kDlopenFlags = RTLD_NOW | RTLD_LOCAL;
#else
constexpr int kDlopenFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif

// The wrapper's entry points, resolved with dlsym.
struct SpmApi {
  std::string path;
  decltype(&sprint_spm_api_version) api_version = nullptr;
  decltype(&sprint_spm_library_version) library_version = nullptr;
  decltype(&sprint_spm_create) create = nullptr;
  decltype(&sprint_spm_destroy) destroy = nullptr;
  decltype(&sprint_spm_free) free = nullptr;
  decltype(&sprint_spm_encode) encode = nullptr;
  decltype(&sprint_spm_decode) decode = nullptr;
  decltype(&sprint_spm_vocab_size) vocab_size = nullptr;
  decltype(&sprint_spm_id_to_piece) id_to_piece = nullptr;
  decltype(&sprint_spm_piece_to_id) piece_to_id = nullptr;
  decltype(&sprint_spm_piece_type) piece_type = nullptr;
  decltype(&sprint_spm_bos_id) bos_id = nullptr;
  decltype(&sprint_spm_eos_id) eos_id = nullptr;
  decltype(&sprint_spm_pad_id) pad_id = nullptr;
  decltype(&sprint_spm_unk_id) unk_id = nullptr;
};

std::vector<std::string> library_candidates() {
  std::vector<std::string> out;
  auto add = [&](const fs::path& p) {
    std::string s = p.lexically_normal().string();
    if (!s.empty() && std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  };
  if (const char* env = std::getenv("SPRINT_SPM_LIBRARY"); env != nullptr && *env != '\0') {
    std::error_code ec;
    fs::path p(env);
    add(fs::is_directory(p, ec) ? p / kLibraryName : p);
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && exe.has_parent_path()) {
    add(exe.parent_path() / kLibraryName);
    add(exe.parent_path() / ".." / "lib" / kLibraryName);
  }
  return out;
}

// Resolves every symbol of `handle`; returns an empty string on success, else what was missing.
std::string resolve(void* handle, SpmApi& api) {
  std::string missing;
  auto get = [&](auto& fn, const char* name) {
    dlerror();
    void* sym = dlsym(handle, name);
    if (sym == nullptr) {
      missing += missing.empty() ? name : std::string(", ") + name;
      return;
    }
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(sym);
  };
  get(api.api_version, "sprint_spm_api_version");
  get(api.library_version, "sprint_spm_library_version");
  get(api.create, "sprint_spm_create");
  get(api.destroy, "sprint_spm_destroy");
  get(api.free, "sprint_spm_free");
  get(api.encode, "sprint_spm_encode");
  get(api.decode, "sprint_spm_decode");
  get(api.vocab_size, "sprint_spm_vocab_size");
  get(api.id_to_piece, "sprint_spm_id_to_piece");
  get(api.piece_to_id, "sprint_spm_piece_to_id");
  get(api.piece_type, "sprint_spm_piece_type");
  get(api.bos_id, "sprint_spm_bos_id");
  get(api.eos_id, "sprint_spm_eos_id");
  get(api.pad_id, "sprint_spm_pad_id");
  get(api.unk_id, "sprint_spm_unk_id");
  if (!missing.empty()) return "missing symbols " + missing;
  if (int v = api.api_version(); v != SPRINT_SPM_API_VERSION)
    return str("interface version ", v, ", expected ", SPRINT_SPM_API_VERSION, " (stale build?)");
  return {};
}

// Loads the wrapper once per process. A failure is not remembered, so a later call (e.g. after setting
// $SPRINT_SPM_LIBRARY) tries again. The library is never unloaded.
const SpmApi& spm_api() {
  static std::mutex mutex;
  static std::unique_ptr<SpmApi> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  if (loaded) return *loaded;

  std::string tried;
  for (const auto& path : library_candidates()) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      tried += str("\n  ", path, ": not found");
      continue;
    }
    dlerror();
    void* handle = dlopen(path.c_str(), kDlopenFlags);
    if (handle == nullptr) {
      const char* why = dlerror();
      tried += str("\n  ", path, ": ", why != nullptr ? why : "dlopen failed");
      continue;
    }
    auto api = std::make_unique<SpmApi>();
    api->path = path;
    if (std::string why = resolve(handle, *api); !why.empty()) {
      tried += str("\n  ", path, ": ", why);
      dlclose(handle);
      continue;
    }
    loaded = std::move(api);
    return *loaded;
  }
  throw Error(str("cannot load the SentencePiece wrapper ", kLibraryName,
                  " (set SPRINT_SPM_LIBRARY to its path, or build the sprint_spm target); tried:",
                  tried.empty() ? std::string("\n  (no candidate paths)") : tried));
}

// Takes ownership of a string returned by the wrapper.
std::string take_string(const SpmApi& api, char* s, const char* fallback) {
  std::string out = s != nullptr ? std::string(s) : std::string(fallback);
  api.free(s);
  return out;
}

fs::path resolve_model_file(const std::string& dir_or_file) {
  SPRINT_CHECK(!dir_or_file.empty(), "tokenizer: no model path given");
  std::error_code ec;
  fs::path p(dir_or_file);
  if (fs::is_directory(p, ec)) {
    for (const fs::path& c : {p / kModelName, p / "tokenizer" / kModelName})
      if (fs::is_regular_file(c, ec)) return c;
    std::string hint;
    if (fs::exists(p / "tokenizer.json", ec) || fs::exists(p / "tokenizer" / "tokenizer.json", ec))
      hint = " (only tokenizer.json found; the SentencePiece tokenizer.model is required)";
    throw Error(str("tokenizer: no ", kModelName, " in folder '", p.string(), "' (nor in its tokenizer/ subfolder)",
                    hint));
  }
  SPRINT_CHECK(fs::exists(p, ec), "tokenizer model '", p.string(), "' does not exist");
  SPRINT_CHECK(fs::is_regular_file(p, ec), "tokenizer model '", p.string(), "' is not a regular file");
  SPRINT_CHECK(fs::file_size(p, ec) > 0 || ec, "tokenizer model '", p.string(), "' is empty");
  return p;
}

}  // namespace

struct Tokenizer::Impl {
  const SpmApi* api = nullptr;
  sprint_spm* handle = nullptr;
  std::string path;
  int64_t vocab = 0;
  int64_t bos = -1, eos = -1, pad = -1, unk = -1;
  // Literal texts mapped to ids when parse_special is on (control and unknown pieces), longest first.
  std::vector<std::pair<std::string, int64_t>> specials;

  ~Impl() {
    if (handle != nullptr) api->destroy(handle);
  }

  // Plain SentencePiece encode of text[begin, end), appended to out.
  void encode_plain(const std::string& text, size_t begin, size_t end, std::vector<int64_t>& out) const {
    if (end <= begin) return;
    int32_t* ids = nullptr;
    size_t n = 0;
    char* err = nullptr;
    if (api->encode(handle, text.data() + begin, end - begin, &ids, &n, &err) != 0)
      throw Error(str("tokenizer '", path, "': ", take_string(*api, err, "encode failed")));
    out.reserve(out.size() + n);
    for (size_t i = 0; i < n; ++i) out.push_back(ids[i]);
    api->free(ids);
  }
};

Tokenizer Tokenizer::load(const std::string& tokenizer_dir_or_model_file) {
  const fs::path model = resolve_model_file(tokenizer_dir_or_model_file);
  const SpmApi& api = spm_api();

  auto impl = std::make_shared<Impl>();
  impl->api = &api;
  impl->path = model.string();
  char* err = nullptr;
  impl->handle = api.create(impl->path.c_str(), &err);
  if (impl->handle == nullptr)
    throw Error(str("cannot load SentencePiece tokenizer model '", impl->path,
                    "': ", take_string(api, err, "unknown error")));

  impl->vocab = api.vocab_size(impl->handle);
  impl->bos = api.bos_id(impl->handle);
  impl->eos = api.eos_id(impl->handle);
  impl->pad = api.pad_id(impl->handle);
  impl->unk = api.unk_id(impl->handle);
  for (int id = 0; id < impl->vocab; ++id) {
    const int type = api.piece_type(impl->handle, id);
    if (type != SPRINT_SPM_PIECE_CONTROL && type != SPRINT_SPM_PIECE_UNKNOWN) continue;
    size_t len = 0;
    const char* piece = api.id_to_piece(impl->handle, id, &len);
    if (piece != nullptr && len > 0) impl->specials.emplace_back(std::string(piece, len), id);
  }
  std::stable_sort(impl->specials.begin(), impl->specials.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });

  Tokenizer t;
  t.impl_ = std::move(impl);
  return t;
}

std::string Tokenizer::wrapper_library_path() { return spm_api().path; }

const Tokenizer::Impl& Tokenizer::impl() const {
  SPRINT_CHECK(impl_ != nullptr, "tokenizer: not loaded");
  return *impl_;
}

const std::string& Tokenizer::model_path() const { return impl().path; }
int64_t Tokenizer::vocab_size() const { return impl().vocab; }
int64_t Tokenizer::bos_id() const { return impl().bos; }
int64_t Tokenizer::eos_id() const { return impl().eos; }
int64_t Tokenizer::pad_id() const { return impl().pad; }
int64_t Tokenizer::unk_id() const { return impl().unk; }

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_bos, bool parse_special) const {
  const Impl& m = impl();
  std::vector<int64_t> out;
  if (add_bos) {
    SPRINT_CHECK(m.bos >= 0, "tokenizer '", m.path, "': the model defines no BOS piece");
    out.push_back(m.bos);
  }
  if (!parse_special || m.specials.empty()) {
    m.encode_plain(text, 0, text.size(), out);
    return out;
  }
  // Split on literal special pieces (longest match at the leftmost position), encode the text between them.
  size_t start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const std::pair<std::string, int64_t>* hit = nullptr;
    for (const auto& s : m.specials) {
      if (text.compare(pos, s.first.size(), s.first) == 0) {
        hit = &s;
        break;
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    m.encode_plain(text, start, pos, out);
    out.push_back(hit->second);
    pos += hit->first.size();
    start = pos;
  }
  m.encode_plain(text, start, text.size(), out);
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  const Impl& m = impl();
  std::vector<int32_t> in(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    SPRINT_CHECK(ids[i] >= 0 && ids[i] < m.vocab, "tokenizer '", m.path, "': cannot decode id ", ids[i],
                 " at position ", i, ": outside the vocabulary [0, ", m.vocab, ")");
    in[i] = static_cast<int32_t>(ids[i]);
  }
  char* text = nullptr;
  size_t len = 0;
  char* err = nullptr;
  if (m.api->decode(m.handle, in.data(), in.size(), &text, &len, &err) != 0)
    throw Error(str("tokenizer '", m.path, "': ", take_string(*m.api, err, "decode failed")));
  std::string out(text, len);
  m.api->free(text);
  return out;
}

TokenizedBatch Tokenizer::encode_batch(const std::vector<std::string>& texts, int max_length, bool add_bos,
                                       bool pad_right, bool parse_special) const {
  const Impl& m = impl();
  SPRINT_CHECK(max_length > 0, "tokenizer: max_length must be positive, got ", max_length);
  SPRINT_CHECK(m.pad >= 0, "tokenizer '", m.path, "': the model defines no pad piece, cannot pad a batch");
  const auto batch = static_cast<int64_t>(texts.size());
  const int64_t len = max_length;
  auto ids = torch::full({batch, len}, m.pad, torch::kInt64);
  auto mask = torch::zeros({batch, len}, torch::kInt64);
  auto* ids_p = ids.data_ptr<int64_t>();
  auto* mask_p = mask.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<int64_t> row = encode(texts[static_cast<size_t>(b)], add_bos, parse_special);
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(row.size()), len);  // truncation keeps the head
    const int64_t offset = pad_right ? 0 : len - n;
    for (int64_t i = 0; i < n; ++i) {
      ids_p[b * len + offset + i] = row[static_cast<size_t>(i)];
      mask_p[b * len + offset + i] = 1;
    }
  }
  return {ids, mask};
}

std::string Tokenizer::id_to_piece(int64_t id) const {
  const Impl& m = impl();
  SPRINT_CHECK(id >= 0 && id < m.vocab, "tokenizer '", m.path, "': id ", id, " is outside the vocabulary [0, ",
               m.vocab, ")");
  size_t len = 0;
  const char* p = m.api->id_to_piece(m.handle, static_cast<int>(id), &len);
  SPRINT_CHECK(p != nullptr, "tokenizer '", m.path, "': no piece for id ", id);
  return std::string(p, len);
}

int64_t Tokenizer::piece_to_id(const std::string& piece) const {
  const Impl& m = impl();
  return m.api->piece_to_id(m.handle, piece.data(), piece.size());
}

}  // namespace sprint
