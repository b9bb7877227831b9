/* C interface of libsprint_spm, the wrapper around the system SentencePiece library.
 *
 * Why a wrapper: Debian's libsentencepiece bundles and exports its own protobuf-lite 3.14. Loaded into the global
 * symbol scope of a process that also holds another protobuf (a system libprotobuf pulled in by some other
 * library, say), the two copies interpose each other and SentencePiece aborts or crashes. sprint_core therefore
 * never links SentencePiece; it dlopen()s this library with RTLD_LOCAL | RTLD_DEEPBIND, so SentencePiece and its
 * protobuf resolve against themselves and stay out of the global scope.
 *
 * Only plain C types cross this interface. Every string or array the library returns is either owned by the
 * library (see each function) or allocated by it and must be released with sprint_spm_free(); no exception ever
 * crosses it. All functions taking a const handle may be called concurrently from several threads.
 *
 * sprint_core reads these declarations only for the function types; it resolves every symbol with dlsym().
 */
#ifndef SPRINT_SPM_WRAPPER_H_
#define SPRINT_SPM_WRAPPER_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SPRINT_SPM_BUILDING)
#define SPRINT_SPM_API __attribute__((visibility("default")))
#else
#define SPRINT_SPM_API
#endif

/* Bumped whenever a signature below changes; the loader refuses a library with another version. */
#define SPRINT_SPM_API_VERSION 1

typedef struct sprint_spm sprint_spm;

/* Piece types returned by sprint_spm_piece_type (the values of SentencePiece's ModelProto.SentencePiece.Type that
 * the processor API can tell apart; user-defined pieces report NORMAL). */
enum {
  SPRINT_SPM_PIECE_NORMAL = 1,
  SPRINT_SPM_PIECE_UNKNOWN = 2,
  SPRINT_SPM_PIECE_CONTROL = 3,
  SPRINT_SPM_PIECE_UNUSED = 5,
  SPRINT_SPM_PIECE_BYTE = 6,
};

SPRINT_SPM_API int sprint_spm_api_version(void);

/* Version string of the SentencePiece library this wrapper was built against (static storage). */
SPRINT_SPM_API const char* sprint_spm_library_version(void);

/* Loads a serialized SentencePiece model file. Returns NULL on failure and, when error is not NULL, stores a
 * message in *error (free with sprint_spm_free). */
SPRINT_SPM_API sprint_spm* sprint_spm_create(const char* model_path, char** error);

SPRINT_SPM_API void sprint_spm_destroy(sprint_spm* handle);

/* Releases memory returned by this library (error strings, id arrays, decoded text). NULL is fine. */
SPRINT_SPM_API void sprint_spm_free(void* p);

/* Encodes len bytes of UTF-8 text (no BOS/EOS). On success returns 0 and stores a malloc'd array in *ids (NULL when
 * *n_ids is 0). On failure returns -1 and stores a message in *error. */
SPRINT_SPM_API int sprint_spm_encode(const sprint_spm* handle, const char* text, size_t len, int32_t** ids,
                                     size_t* n_ids, char** error);

/* Decodes ids to UTF-8 text (control pieces decode to nothing). On success returns 0 and stores a malloc'd,
 * NUL-terminated string in *text and its length in *len. Out-of-range ids fail with a message. */
SPRINT_SPM_API int sprint_spm_decode(const sprint_spm* handle, const int32_t* ids, size_t n_ids, char** text,
                                     size_t* len, char** error);

SPRINT_SPM_API int sprint_spm_vocab_size(const sprint_spm* handle);

/* The piece string of id, owned by the handle and valid until sprint_spm_destroy; NULL for an out-of-range id.
 * *len receives its length in bytes when len is not NULL. */
SPRINT_SPM_API const char* sprint_spm_id_to_piece(const sprint_spm* handle, int id, size_t* len);

/* The id of a piece, or the unknown id when the vocabulary has no such piece. */
SPRINT_SPM_API int sprint_spm_piece_to_id(const sprint_spm* handle, const char* piece, size_t len);

/* One of the SPRINT_SPM_PIECE_* values, or 0 for an out-of-range id. */
SPRINT_SPM_API int sprint_spm_piece_type(const sprint_spm* handle, int id);

/* Special ids as the model defines them; -1 when the model has none. */
SPRINT_SPM_API int sprint_spm_bos_id(const sprint_spm* handle);
SPRINT_SPM_API int sprint_spm_eos_id(const sprint_spm* handle);
SPRINT_SPM_API int sprint_spm_pad_id(const sprint_spm* handle);
SPRINT_SPM_API int sprint_spm_unk_id(const sprint_spm* handle);

#ifdef __cplusplus
}
#endif

#endif /* SPRINT_SPM_WRAPPER_H_ */
