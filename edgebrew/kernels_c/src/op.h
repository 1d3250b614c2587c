/* The interface every op implements: one file per op in src/ops/, registered in op_registry.c.
 *
 * prepare() runs once when a model loads. It reads the op's attributes, checks EVERY shape
 * and size that run() will rely on (the bundle is untrusted: after prepare succeeds, run()
 * must not be able to read or write out of bounds, whatever the bytes were), stores parsed
 * parameters in node->params (malloc'd; freed by the core with free()), and sets
 * node->scratch_bytes (per worker thread) if run() needs temporary memory.
 *
 * run() computes the outputs from the inputs. It allocates nothing: temporary memory comes
 * from eb_scratch(). Heavy loops are split with eb_parallel_for().
 */
#ifndef EB_OP_H
#define EB_OP_H

#include <stddef.h>
#include <stdint.h>

#include "edgebrew.h"

/* Op codes: the same numbers as enum OpType in edgebrew/bundle/bundle.fbs (append only). */
enum {
    EB_OP_Convolution = 0, EB_OP_Deconvolution = 1, EB_OP_Pooling = 2, EB_OP_InnerProduct = 3,
    EB_OP_ReLU = 4, EB_OP_PReLU = 5, EB_OP_ELU = 6, EB_OP_Sigmoid = 7, EB_OP_TanH = 8,
    EB_OP_AbsVal = 9, EB_OP_BNLL = 10, EB_OP_Power = 11, EB_OP_Exp = 12, EB_OP_Log = 13,
    EB_OP_Threshold = 14, EB_OP_Clip = 15, EB_OP_Dropout = 16, EB_OP_BatchNorm = 17,
    EB_OP_Scale = 18, EB_OP_Bias = 19, EB_OP_LRN = 20, EB_OP_MVN = 21, EB_OP_Softmax = 22,
    EB_OP_Concat = 23, EB_OP_Slice = 24, EB_OP_Split = 25, EB_OP_Eltwise = 26,
    EB_OP_Flatten = 27, EB_OP_Reshape = 28, EB_OP_Crop = 29, EB_OP_Permute = 30,
    EB_OP_ArgMax = 31, EB_OP_Reduction = 32, EB_OP_Normalize = 33, EB_OP_PriorBox = 34,
    EB_OP_DetectionOutput = 35, EB_OP_Quantize = 36, EB_OP_Dequantize = 37,
    EB_NUM_OP_TYPES = 38
};

/* Limits the verifier enforces, so kernels can use fixed-size arrays and int64 math safely. */
#define EB_MAX_TENSOR_ELEMS ((int64_t)1 << 40)

typedef struct eb_error {
    char msg[512];
} eb_error;

typedef struct eb_tensor {
    const char *name;          /* NUL-terminated, verified */
    int index;                 /* position in the model's tensor list */
    int ndim;                  /* 0..EB_MAX_DIMS */
    int64_t dims[EB_MAX_DIMS]; /* every dim >= 1 */
    int64_t count;             /* product of dims, <= EB_MAX_TENSOR_ELEMS */
    eb_dtype dtype;
    int is_constant;           /* weights: data in the bundle; else an activation */
    const void *const_data;    /* constants: count elements of dtype, suitably aligned */
    int64_t arena_offset;      /* activations: byte offset in the arena, bounds verified */
    /* Quantization (Tensor.quant), verified at load: real = scale * (q - zero_point).
     * INT8 activations: quant_count 1, axis -1, scale finite > 0, zero point in [-128, 127].
     * INT8 constants: per tensor as above, or per channel (axis >= 0, quant_count ==
     * dims[axis], scales finite > 0, zero points 0). INT32 constants: optional (count 0 when
     * absent), scales finite >= 0, zero points 0. Float tensors: quant_count 0. */
    int quant_count;
    int quant_axis;                   /* -1: per tensor; else the channel axis */
    const float *quant_scale;         /* quant_count values (malloc'd by the core) */
    const int32_t *quant_zero_point;  /* quant_count values */
    void *core_owned[2];              /* core-private: blocks freed with the model (quant
                                         arrays; FLOAT16 constants widened to FLOAT32) */
} eb_tensor;

typedef struct eb_attrs eb_attrs; /* opaque view of the op's attribute list (bundle_reader) */

typedef struct eb_node {
    const char *name;          /* the layer name, for messages */
    int type;                  /* EB_OP_* */
    int n_inputs, n_outputs, n_weights;
    const eb_tensor **inputs;  /* activations read */
    const eb_tensor **outputs; /* activations written */
    const eb_tensor **weights; /* constants, in Caffe blob order */
    const eb_attrs *attrs;
    void *params;              /* set by prepare (malloc'd, freed by the core) */
    size_t scratch_bytes;      /* set by prepare: temporary bytes per worker thread */
} eb_node;

/* What run() sees of the session. */
typedef struct eb_exec eb_exec;

typedef struct eb_op_kernel {
    const char *type_name;     /* Caffe's type name, e.g. "Convolution" */
    eb_status (*prepare)(eb_node *node, eb_error *err);
    eb_status (*run)(const eb_node *node, eb_exec *ex);
} eb_op_kernel;

/* ---- provided by the core (src/core/) ---------------------------------------------------- */

/* Format "op 'NAME' (Type): <message>" into err; returns `status`. */
eb_status eb_node_fail(const eb_node *node, eb_error *err, eb_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Attributes, by key. A missing key gives the default (ints/floats: *n = 0); a key present with
 * the wrong kind, or a count over `max`, fails with a message naming the op and key.
 * eb_attr_float/floats also accept integer values. */
eb_status eb_attr_int(const eb_node *node, const char *key, int64_t dflt, int64_t *out,
                      eb_error *err);
eb_status eb_attr_float(const eb_node *node, const char *key, double dflt, double *out,
                        eb_error *err);
eb_status eb_attr_ints(const eb_node *node, const char *key, int64_t *out, int max, int *n,
                       eb_error *err);
eb_status eb_attr_floats(const eb_node *node, const char *key, double *out, int max, int *n,
                         eb_error *err);
/* *out points into the bundle (NUL-terminated) or is `dflt`. */
eb_status eb_attr_string(const eb_node *node, const char *key, const char *dflt,
                         const char **out, eb_error *err);
int eb_attr_has(const eb_node *node, const char *key);

/* Data of a tensor for this run: the arena slot of an activation, or the constant's bytes. */
float *eb_data(eb_exec *ex, const eb_tensor *t);
/* The same bytes, untyped (INT8 / INT32 tensors: the int8 kernels in src/ops/int8/). */
void *eb_data_raw(eb_exec *ex, const eb_tensor *t);
/* This node's scratch memory for worker `thread` (node->scratch_bytes bytes, 64-aligned). */
void *eb_scratch(eb_exec *ex, int thread);
/* Number of worker threads (>= 1). */
int eb_num_threads(const eb_exec *ex);
/* Calls fn(ctx, begin, end, thread) over disjoint chunks covering [0, n); returns when all
 * are done. thread is in [0, eb_num_threads). Runs inline when there is one thread. */
typedef void (*eb_range_fn)(void *ctx, int64_t begin, int64_t end, int thread);
void eb_parallel_for(eb_exec *ex, int64_t n, eb_range_fn fn, void *ctx);
/* For data-dependent outputs (DetectionOutput): the output's actual shape this run; its count
 * must not exceed the declared one. */
void eb_set_output_shape(eb_exec *ex, const eb_node *node, int output, int ndim,
                         const int64_t *dims);

/* For run(): record why this op failed (reported as "op 'NAME' (Type) failed while running:
 * <message>"); run() then returns a non-OK status (or EB_OK: the failure still counts). */
void eb_exec_fail(eb_exec *ex, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Shape helpers for prepare(). */
int eb_same_shape(const eb_tensor *a, const eb_tensor *b);

/* The registry: kernel of an op code, or NULL for an unknown code. */
const eb_op_kernel *eb_find_kernel(int op_type);
/* The int8 kernel of an op code (src/ops/int8/), or NULL when the op has no int8 form. The core
 * uses it for Quantize/Dequantize and for any op whose first input or first output is INT8;
 * every other op gets eb_find_kernel()'s float kernel with all its tensors FLOAT32. */
const eb_op_kernel *eb_find_int8_kernel(int op_type);

#endif /* EB_OP_H */
