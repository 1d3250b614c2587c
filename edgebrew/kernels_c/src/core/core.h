/* Private structures of the core (model, session, attributes) and its internal services. */
#ifndef EB_CORE_H
#define EB_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "edgebrew.h"
#include "op.h"
#include "threadpool.h"

#define EB_VERSION_STRING "0.1.0"
/* Bundle format versions this build reads. */
#define EB_FORMAT_VERSION_MIN 1u
#define EB_FORMAT_VERSION_MAX 1u
/* Upper bound on the activation arena a bundle may declare. */
#define EB_MAX_ARENA_BYTES ((uint64_t)1 << 40)
/* Upper bound on session threads. */
#define EB_MAX_THREADS 256
/* Alignment of the arena, scratch, and weight buffers. */
#define EB_ALIGN 64

/* ---- errors.c ---- */
/* Sets this thread's last error; returns `status`. */
eb_status eb_set_error(eb_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Name of an op code ("Convolution"), or "?" when out of range; independent of the kernels. */
const char *eb_op_type_name(int op_type);

/* ---- attributes (attrs.c), built by model.c ---- */
enum { EB_ATTR_INT = 0, EB_ATTR_FLOAT = 1, EB_ATTR_INTS = 2, EB_ATTR_FLOATS = 3, EB_ATTR_STRING = 4 };

typedef struct eb_attr_entry {
    const char *key;       /* NUL-terminated, in the bundle */
    int kind;              /* EB_ATTR_* */
    int64_t i;
    double f;
    uint32_t n_ints;       /* little-endian int64 values at `ints` (any alignment) */
    const uint8_t *ints;
    uint32_t n_floats;     /* little-endian float64 values at `floats` */
    const uint8_t *floats;
    const char *s;         /* NUL-terminated in the bundle, or "" */
} eb_attr_entry;

struct eb_attrs {
    int n;
    const eb_attr_entry *items;
};

/* ---- model.c ---- */
struct eb_model {
    /* storage of the bytes */
    const uint8_t *data;      /* the bundle bytes (64-aligned when owned or mapped) */
    size_t size;
    void *owned;              /* malloc'd block holding a copy (freed), or NULL */
    void *map;                /* mmap'd region (munmap'd), or NULL */
    size_t map_size;

    uint32_t format_version;
    int n_tensors;
    eb_tensor *tensors;
    int n_nodes;
    eb_node *nodes;
    const eb_op_kernel **kernels; /* per node */
    const eb_tensor **ptrs;       /* storage of every node's inputs/outputs/weights arrays */
    eb_attrs *attrs;              /* per node */
    eb_attr_entry *attr_items;    /* storage of every node's attributes */

    int n_inputs, n_outputs;
    int *inputs;                  /* tensor indices */
    int *outputs;
    int *tensor_output_slot;      /* per tensor: its index in `outputs`, or -1 */

    uint64_t arena_declared;      /* Model.arena_size */
    size_t arena_bytes;           /* what a session allocates: min(declared, end of the last
                                     activation rounded up to EB_ALIGN) */
    size_t scratch_stride;        /* max node scratch_bytes, rounded up to EB_ALIGN */
};

/* ---- session.c ---- */
struct eb_exec {
    eb_session *session;
    const eb_node *node;          /* the node being run */
    uint8_t *arena;
    uint8_t *scratch;
    size_t scratch_stride;
    int threads;
    eb_pool *pool;
    int failed;                   /* set by a bad eb_set_output_shape call */
    char fail_msg[256];
};

/* Runs ops [0, n_ops) of the session's model (eb_session_run runs them all). */
eb_status eb_session_run_ops(eb_session *s, int n_ops);

struct eb_session {
    const eb_model *model;
    int threads;
    void *arena_block;            /* calloc'd; arena is its EB_ALIGN-aligned interior */
    uint8_t *arena;
    void *scratch_block;
    uint8_t *scratch;
    eb_pool *pool;
    int *out_ndim;                /* per model output: actual shape of the last run */
    int64_t (*out_dims)[EB_MAX_DIMS];
    eb_exec ex;
};

#endif /* EB_CORE_H */
