/* libedgebrew: runs a .brew bundle on the CPU. C11; depends on libc, libm and pthreads only.
 *
 * One eb_model (immutable, shareable across threads) holds the verified bundle; each thread
 * that runs it uses its own eb_session (activation arena, scratch, thread pool). Every function
 * returns an eb_status; on failure eb_last_error() (thread-local) says what went wrong, naming
 * the op, tensor or field involved. No byte string given to the loaders can crash the library.
 */
#ifndef EDGEBREW_H
#define EDGEBREW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EB_MAX_DIMS 8

typedef enum eb_status {
    EB_OK = 0,
    EB_ERR_INVALID_ARGUMENT = 1, /* bad call: NULL handle, unknown name, wrong shape or count */
    EB_ERR_INVALID_BUNDLE = 2,   /* the bytes are not a valid bundle (verification failed) */
    EB_ERR_UNSUPPORTED = 3,      /* a valid bundle using something this build cannot run */
    EB_ERR_OUT_OF_MEMORY = 4,
    EB_ERR_IO = 5,               /* file could not be opened / mapped */
    EB_ERR_RUNTIME = 6           /* failure while running (should not happen on a verified model) */
} eb_status;

typedef enum eb_dtype {
    EB_FLOAT32 = 0, EB_FLOAT16 = 1, EB_INT8 = 2, EB_UINT8 = 3, EB_INT32 = 4
} eb_dtype;

typedef struct eb_model eb_model;
typedef struct eb_session eb_session;

typedef struct eb_session_options {
    int threads; /* worker threads for the heavy ops; <= 1 runs on the calling thread */
} eb_session_options;

/* Library version string, e.g. "0.1.0". */
const char *eb_version(void);
/* The message of the last failed call on this thread ("" if none). */
const char *eb_last_error(void);
/* Name of a status code, e.g. "EB_ERR_INVALID_BUNDLE". */
const char *eb_status_name(eb_status status);

/* Load from memory. copy != 0 copies the bytes; copy == 0 uses them in place, and the caller
 * keeps them alive and unchanged until eb_model_free. The bundle is verified before use. */
eb_status eb_model_load_memory(const void *data, size_t size, int copy, eb_model **out);
/* Load from a file, mapped read-only (weights are used in place). */
eb_status eb_model_load_file(const char *path, eb_model **out);
void eb_model_free(eb_model *model);

int eb_model_num_inputs(const eb_model *model);
int eb_model_num_outputs(const eb_model *model);
/* Tensor descriptions; `which` is 0 for inputs, 1 for outputs. Returns NULL/-1 on bad index. */
const char *eb_model_io_name(const eb_model *model, int which, int index);
int eb_model_io_shape(const eb_model *model, int which, int index, int64_t dims[EB_MAX_DIMS]);
eb_dtype eb_model_io_dtype(const eb_model *model, int which, int index);
/* Index of the input/output called `name`, or -1. */
int eb_model_find_io(const eb_model *model, int which, const char *name);
/* Bytes of the activation arena each session allocates (from the bundle's memory plan). */
size_t eb_model_arena_size(const eb_model *model);
int eb_model_num_ops(const eb_model *model);

eb_status eb_session_create(const eb_model *model, const eb_session_options *options,
                            eb_session **out);
void eb_session_free(eb_session *session);
/* Copy `count` float32 values into input `index`; count must equal the input's element count.
 * Set every input before each run: the memory plan reuses an input's bytes once no op reads it
 * any more, so after a run the inputs hold other data. */
eb_status eb_session_set_input(eb_session *session, int index, const float *data, size_t count);
/* Run every op. Allocates nothing. */
eb_status eb_session_run(eb_session *session);
/* Output `index`: a pointer valid until the next run or eb_session_free, and its element count.
 * Its shape: eb_session_output_shape (data-dependent outputs such as detections may be
 * smaller than the model's declared shape). */
eb_status eb_session_get_output(eb_session *session, int index, const float **data,
                                size_t *count);
int eb_session_output_shape(const eb_session *session, int index, int64_t dims[EB_MAX_DIMS]);

#ifdef __cplusplus
}
#endif
#endif /* EDGEBREW_H */
