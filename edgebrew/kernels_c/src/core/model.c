/* Loading and verifying a bundle into an eb_model.
 *
 * Verification is one forward pass over the flatbuffer with the bounds-checked reader, in this
 * order: header and root table; format version; weight segment and buffers; tensors (shape,
 * dtype, constant data or arena slot); graph inputs/outputs; ops (type and kernel, tensor
 * lists in topological order, attributes, fused names); metadata. Then the internal structures
 * are built (tensor array, node array with pointer arrays into one pool, parsed attributes)
 * and every kernel's prepare() validates its own shapes and attributes. run() parses nothing.
 * Any failure frees everything allocated so far and sets the thread's last error.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle_reader.h"
#include "core.h"
#include "../kernels/half.h"

/* Schema field ids (vtable slots), in bundle.fbs declaration order. */
enum { F_ATTR_KEY, F_ATTR_KIND, F_ATTR_I, F_ATTR_F, F_ATTR_INTS, F_ATTR_FLOATS, F_ATTR_S };
enum { F_QUANT_SCALE, F_QUANT_ZERO_POINT, F_QUANT_AXIS };
enum { F_TENSOR_NAME, F_TENSOR_SHAPE, F_TENSOR_DTYPE, F_TENSOR_BUFFER, F_TENSOR_ARENA_OFFSET,
       F_TENSOR_QUANT };
enum { F_OP_NAME, F_OP_TYPE, F_OP_INPUTS, F_OP_OUTPUTS, F_OP_WEIGHTS, F_OP_ATTRS, F_OP_FUSED,
       F_OP_PARAM_MULTS };
enum { F_PRE_MEAN, F_PRE_MEAN_FILE, F_PRE_SCALE, F_PRE_CHANNEL_ORDER, F_PRE_INPUT_SIZE,
       F_PRE_GRAYSCALE };
enum { F_META_MODEL_NAME, F_META_SOURCE_PROTOTXT, F_META_SOURCE_CAFFEMODEL, F_META_SOURCE_SHA1,
       F_META_PREPROCESSING, F_META_LABELS, F_META_CONVERTER_VERSION, F_META_CONVERTER_OPTIONS,
       F_META_EXTRA };
enum { F_MODEL_FORMAT_VERSION, F_MODEL_TENSORS, F_MODEL_OPS, F_MODEL_INPUTS, F_MODEL_OUTPUTS,
       F_MODEL_BUFFERS, F_MODEL_ARENA_SIZE, F_MODEL_WEIGHT_SEGMENT_OFFSET,
       F_MODEL_WEIGHT_SEGMENT_SIZE, F_MODEL_METADATA };

#define BUFFER_STRUCT_SIZE 16u /* struct Buffer { ulong offset; ulong size; } */
#define MAX_TENSORS (1 << 24)
#define MAX_OPS (1 << 24)
#define MAX_OP_LIST (1 << 20)  /* inputs/outputs/weights/attrs of one op */
#define MAX_SCRATCH_BYTES ((uint64_t)1 << 40)

/* Dtypes (quantization): FLOAT32 anywhere; INT8 activations and constants (with verified
 * Tensor.quant); INT32 constants (biases); FLOAT16 constants, widened to FLOAT32 at load (the
 * kernels then see FLOAT32). UINT8, FLOAT16/INT32 activations: refused. Which kernel runs an
 * op (float or int8) is decided in build_nodes(). */

static const char *dtype_name(int dt) {
    switch (dt) {
    case EB_FLOAT32: return "FLOAT32";
    case EB_FLOAT16: return "FLOAT16";
    case EB_INT8: return "INT8";
    case EB_UINT8: return "UINT8";
    case EB_INT32: return "INT32";
    }
    return "?";
}

static int dtype_size(int dt) {
    switch (dt) {
    case EB_FLOAT32: return 4;
    case EB_FLOAT16: return 2;
    case EB_INT8: return 1;
    case EB_UINT8: return 1;
    case EB_INT32: return 4;
    }
    return 0;
}

/* ---- loader context ---------------------------------------------------------------------- */

typedef struct op_info {
    eb_fb_table t;
    const char *name;
    int type;
    eb_fb_vec inputs, outputs, weights, attrs;
} op_info;

typedef struct loader {
    eb_model *m;
    eb_fb r;
    eb_fb_table root;
    eb_fb_vec buffers;
    uint64_t ws_off, ws_size;
    op_info *ops;
    uint8_t *produced; /* per tensor */
} loader;

static eb_status bad(eb_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static eb_status bad(eb_status st, const char *fmt, ...) {
    char msg[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (st == EB_ERR_INVALID_BUNDLE) return eb_set_error(st, "invalid bundle: %s", msg);
    return eb_set_error(st, "%s", msg);
}

/* A reader failure, with context. */
#define RFAIL(ld, ...) reader_fail((ld), __VA_ARGS__)
static eb_status reader_fail(loader *ld, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static eb_status reader_fail(loader *ld, const char *fmt, ...) {
    char ctx[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    return bad(EB_ERR_INVALID_BUNDLE, "%s: %s", ctx, ld->r.msg);
}

static void *xcalloc(size_t n, size_t sz) {
    if (n == 0) n = 1;
    return calloc(n, sz);
}

/* ---- verification steps ------------------------------------------------------------------ */

static eb_status load_header(loader *ld) {
    eb_model *m = ld->m;
    if (eb_fb_init(&ld->r, m->data, m->size, "EBRW", &ld->root))
        return bad(EB_ERR_INVALID_BUNDLE, "%s", ld->r.msg);
    uint32_t ver;
    if (eb_fb_u32(&ld->r, &ld->root, F_MODEL_FORMAT_VERSION, 0, &ver))
        return RFAIL(ld, "Model.format_version");
    if (ver == 0) return bad(EB_ERR_INVALID_BUNDLE, "format_version is missing or 0");
    if (ver < EB_FORMAT_VERSION_MIN || ver > EB_FORMAT_VERSION_MAX)
        return bad(EB_ERR_UNSUPPORTED,
                   "bundle format_version %u is not supported by this build (reads %u..%u)",
                   (unsigned)ver, (unsigned)EB_FORMAT_VERSION_MIN, (unsigned)EB_FORMAT_VERSION_MAX);
    m->format_version = ver;

    uint64_t arena;
    if (eb_fb_u64(&ld->r, &ld->root, F_MODEL_ARENA_SIZE, 0, &arena))
        return RFAIL(ld, "Model.arena_size");
    if (arena > EB_MAX_ARENA_BYTES)
        return bad(EB_ERR_INVALID_BUNDLE, "arena_size %llu exceeds the limit of %llu bytes",
                   (unsigned long long)arena, (unsigned long long)EB_MAX_ARENA_BYTES);
    m->arena_declared = arena;

    if (eb_fb_u64(&ld->r, &ld->root, F_MODEL_WEIGHT_SEGMENT_OFFSET, 0, &ld->ws_off))
        return RFAIL(ld, "Model.weight_segment_offset");
    if (eb_fb_u64(&ld->r, &ld->root, F_MODEL_WEIGHT_SEGMENT_SIZE, 0, &ld->ws_size))
        return RFAIL(ld, "Model.weight_segment_size");
    if (ld->ws_off % EB_ALIGN != 0)
        return bad(EB_ERR_INVALID_BUNDLE, "weight_segment_offset %llu is not a multiple of %d",
                   (unsigned long long)ld->ws_off, EB_ALIGN);
    if (ld->ws_off > (uint64_t)m->size || ld->ws_size > (uint64_t)m->size - ld->ws_off)
        return bad(EB_ERR_INVALID_BUNDLE,
                   "weight segment [%llu, +%llu) extends past the end of the file (%zu bytes)",
                   (unsigned long long)ld->ws_off, (unsigned long long)ld->ws_size, m->size);

    int present;
    if (eb_fb_vector(&ld->r, &ld->root, F_MODEL_BUFFERS, BUFFER_STRUCT_SIZE, 8, &ld->buffers,
                     &present))
        return RFAIL(ld, "Model.buffers");
    for (uint32_t i = 0; i < ld->buffers.len; i++) {
        uint64_t off = eb_fb_vec_u64(&ld->r, &ld->buffers, i, 0);
        uint64_t sz = eb_fb_vec_u64(&ld->r, &ld->buffers, i, 8);
        if (off % EB_ALIGN != 0)
            return bad(EB_ERR_INVALID_BUNDLE, "buffer %u: offset %llu is not a multiple of %d",
                       (unsigned)i, (unsigned long long)off, EB_ALIGN);
        if (off > ld->ws_size || sz > ld->ws_size - off)
            return bad(EB_ERR_INVALID_BUNDLE,
                       "buffer %u: [%llu, +%llu) lies outside the weight segment (%llu bytes)",
                       (unsigned)i, (unsigned long long)off, (unsigned long long)sz,
                       (unsigned long long)ld->ws_size);
    }
    return EB_OK;
}

/* Reads Tensor.quant into t (malloc'd arrays, t->core_owned[0]); verified by check_quant(). */
static eb_status load_quant(loader *ld, const eb_fb_table *tt, int ti, eb_tensor *t) {
    eb_fb_table q;
    int present;
    t->quant_axis = -1;
    if (eb_fb_table_field(&ld->r, tt, F_TENSOR_QUANT, &q, &present))
        return RFAIL(ld, "tensor %d: quant", ti);
    if (!present) return EB_OK;
    eb_fb_vec sv, zv;
    int32_t axis;
    if (eb_fb_vector(&ld->r, &q, F_QUANT_SCALE, 4, 4, &sv, &present))
        return RFAIL(ld, "tensor %d: quant.scale", ti);
    if (eb_fb_vector(&ld->r, &q, F_QUANT_ZERO_POINT, 8, 8, &zv, &present))
        return RFAIL(ld, "tensor %d: quant.zero_point", ti);
    if (eb_fb_i32(&ld->r, &q, F_QUANT_AXIS, -1, &axis))
        return RFAIL(ld, "tensor %d: quant.axis", ti);
    if (axis < -1 || axis >= EB_MAX_DIMS)
        return bad(EB_ERR_INVALID_BUNDLE, "tensor %d: quant.axis %d is out of range", ti,
                   (int)axis);
    if (sv.len != zv.len)
        return bad(EB_ERR_INVALID_BUNDLE,
                   "tensor %d ('%.64s'): quant has %u scales but %u zero points", ti, t->name,
                   (unsigned)sv.len, (unsigned)zv.len);
    t->quant_axis = (int)axis;
    if (sv.len == 0) return EB_OK;
    if (sv.len > (uint32_t)(INT_MAX / 8))
        return bad(EB_ERR_INVALID_BUNDLE, "tensor %d ('%.64s'): quant has %u values", ti,
                   t->name, (unsigned)sv.len);
    void *block = malloc((size_t)sv.len * (sizeof(float) + sizeof(int32_t)));
    if (!block) return bad(EB_ERR_OUT_OF_MEMORY, "out of memory (quantization parameters)");
    t->core_owned[0] = block;
    float *scale = (float *)block;
    int32_t *zp = (int32_t *)(void *)(scale + sv.len);
    for (uint32_t i = 0; i < sv.len; i++) {
        scale[i] = eb_fb_le_f32(ld->r.buf + sv.data + (size_t)i * 4u);
        int64_t z = eb_fb_vec_i64(&ld->r, &zv, i);
        if (z < INT32_MIN || z > INT32_MAX)
            return bad(EB_ERR_INVALID_BUNDLE,
                       "tensor %d ('%.64s'): quant.zero_point[%u] = %lld is out of range", ti,
                       t->name, (unsigned)i, (long long)z);
        zp[i] = (int32_t)z;
    }
    t->quant_count = (int)sv.len;
    t->quant_scale = scale;
    t->quant_zero_point = zp;
    return EB_OK;
}

/* The dtype of a loaded tensor (is_constant known) and its quantization, by the rules of op.h. */
static eb_status check_dtype_quant(eb_tensor *t, int ti) {
    const int dt = (int)t->dtype;
    if (dt == EB_UINT8 || (!t->is_constant && dt != EB_FLOAT32 && dt != EB_INT8))
        return bad(EB_ERR_UNSUPPORTED,
                   "tensor %d ('%.64s'): %s %s tensors are not supported by this build", ti,
                   t->name, dtype_name(dt), t->is_constant ? "constant" : "activation");
    if (dt == EB_FLOAT32 || dt == EB_FLOAT16) { /* float: any quant is ignored */
        t->quant_count = 0;
        t->quant_axis = -1;
        return EB_OK;
    }
    if (t->quant_count == 0) {
        if (dt == EB_INT32) {
            t->quant_axis = -1;
            return EB_OK;
        }
        return bad(EB_ERR_INVALID_BUNDLE,
                   "tensor %d ('%.64s'): an INT8 tensor needs quantization parameters "
                   "(Tensor.quant scale and zero_point)", ti, t->name);
    }
    const int axis = t->quant_axis;
    if (axis >= 0) {
        if (!t->is_constant)
            return bad(EB_ERR_INVALID_BUNDLE,
                       "tensor %d ('%.64s'): an int8 activation needs per-tensor quantization "
                       "(axis -1), got axis %d", ti, t->name, axis);
        if (axis >= t->ndim || (int64_t)t->quant_count != t->dims[axis])
            return bad(EB_ERR_INVALID_BUNDLE,
                       "tensor %d ('%.64s'): per-channel quantization on axis %d has %d "
                       "values, the tensor has %lld there", ti, t->name, axis, t->quant_count,
                       axis < t->ndim ? (long long)t->dims[axis] : 0LL);
    } else if (t->quant_count != 1) {
        return bad(EB_ERR_INVALID_BUNDLE,
                   "tensor %d ('%.64s'): per-tensor quantization needs 1 scale, got %d", ti,
                   t->name, t->quant_count);
    }
    for (int i = 0; i < t->quant_count; i++) {
        const float s = t->quant_scale[i];
        const int32_t z = t->quant_zero_point[i];
        if (!isfinite(s) || s < 0.0f || (dt == EB_INT8 && s == 0.0f))
            return bad(EB_ERR_INVALID_BUNDLE,
                       "tensor %d ('%.64s'): quantization scale[%d] = %g must be finite and > 0",
                       ti, t->name, i, (double)s);
        if (axis >= 0 || dt == EB_INT32) {
            if (z != 0)
                return bad(EB_ERR_INVALID_BUNDLE,
                           "tensor %d ('%.64s'): zero_point[%d] = %d, %s needs 0", ti, t->name,
                           i, (int)z, dt == EB_INT32 ? "an INT32 tensor" :
                           "per-channel (symmetric) quantization");
        } else if (z < -128 || z > 127) {
            return bad(EB_ERR_INVALID_BUNDLE,
                       "tensor %d ('%.64s'): zero_point %d is outside the int8 range [-128, 127]",
                       ti, t->name, (int)z);
        }
    }
    return EB_OK;
}

/* IEEE 754 binary16 -> binary32, exactly (subnormals, infinities, NaN payloads). */
/* A FLOAT16 constant becomes a FLOAT32 one (a 64-aligned copy owned by the model). */
static eb_status widen_fp16(eb_tensor *t) {
    if ((uint64_t)t->count > (uint64_t)(SIZE_MAX / 4 - EB_ALIGN))
        return bad(EB_ERR_OUT_OF_MEMORY, "tensor '%.64s': too large to widen", t->name);
    void *dst = NULL;
    if (posix_memalign(&dst, EB_ALIGN, (size_t)t->count * 4u + 4u) != 0 || !dst)
        return bad(EB_ERR_OUT_OF_MEMORY, "out of memory widening float16 tensor '%.64s'",
                   t->name);
    const uint8_t *src = (const uint8_t *)t->const_data;
    float *out = (float *)dst;
    for (int64_t i = 0; i < t->count; i++)
        out[i] = eb_half_to_float((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
    t->core_owned[1] = dst;
    t->const_data = dst;
    t->dtype = EB_FLOAT32;
    return EB_OK;
}

static eb_status load_tensors(loader *ld) {
    eb_model *m = ld->m;
    eb_fb_vec tv;
    int present;
    if (eb_fb_vector(&ld->r, &ld->root, F_MODEL_TENSORS, 4, 4, &tv, &present))
        return RFAIL(ld, "Model.tensors");
    if (tv.len > MAX_TENSORS)
        return bad(EB_ERR_INVALID_BUNDLE, "too many tensors (%u)", (unsigned)tv.len);
    m->n_tensors = (int)tv.len;
    m->tensors = (eb_tensor *)xcalloc(tv.len, sizeof *m->tensors);
    m->tensor_output_slot = (int *)xcalloc(tv.len, sizeof(int));
    ld->produced = (uint8_t *)xcalloc(tv.len, 1);
    if (!m->tensors || !m->tensor_output_slot || !ld->produced)
        return bad(EB_ERR_OUT_OF_MEMORY, "out of memory (%u tensors)", (unsigned)tv.len);

    uint64_t arena_end = 0;
    for (uint32_t i = 0; i < tv.len; i++) {
        eb_tensor *t = &m->tensors[i];
        int ti = (int)i;
        eb_fb_table tt;
        m->tensor_output_slot[i] = -1;
        t->index = ti;
        t->arena_offset = -1;
        if (eb_fb_vec_table(&ld->r, &tv, i, &tt)) return RFAIL(ld, "tensor %d", ti);
        uint32_t name_len;
        if (eb_fb_string(&ld->r, &tt, F_TENSOR_NAME, &t->name, &name_len, &present))
            return RFAIL(ld, "tensor %d: name", ti);
        if (!present) return bad(EB_ERR_INVALID_BUNDLE, "tensor %d: name is missing", ti);

        eb_fb_vec sv;
        if (eb_fb_vector(&ld->r, &tt, F_TENSOR_SHAPE, 8, 8, &sv, &present))
            return RFAIL(ld, "tensor %d ('%.64s'): shape", ti, t->name);
        if (sv.len > EB_MAX_DIMS)
            return bad(EB_ERR_INVALID_BUNDLE, "tensor %d ('%.64s'): %u dims, at most %d", ti,
                       t->name, (unsigned)sv.len, EB_MAX_DIMS);
        t->ndim = (int)sv.len;
        int64_t count = 1;
        for (uint32_t d = 0; d < sv.len; d++) {
            int64_t dim = eb_fb_vec_i64(&ld->r, &sv, d);
            if (dim < 1)
                return bad(EB_ERR_INVALID_BUNDLE, "tensor %d ('%.64s'): dim %u is %lld (must be >= 1)",
                           ti, t->name, (unsigned)d, (long long)dim);
            if (dim > EB_MAX_TENSOR_ELEMS / count)
                return bad(EB_ERR_INVALID_BUNDLE,
                           "tensor %d ('%.64s'): more than %lld elements", ti, t->name,
                           (long long)EB_MAX_TENSOR_ELEMS);
            count *= dim;
            t->dims[d] = dim;
        }
        t->count = count;

        int8_t dt;
        if (eb_fb_i8(&ld->r, &tt, F_TENSOR_DTYPE, EB_FLOAT32, &dt))
            return RFAIL(ld, "tensor %d ('%.64s'): dtype", ti, t->name);
        int dsize = dtype_size(dt);
        if (dsize == 0)
            return bad(EB_ERR_INVALID_BUNDLE, "tensor %d ('%.64s'): unknown dtype %d", ti,
                       t->name, (int)dt);
        t->dtype = (eb_dtype)dt;
        uint64_t bytes = (uint64_t)count * (uint64_t)dsize; /* <= 2^42 */

        int32_t buffer;
        int64_t arena_offset;
        if (eb_fb_i32(&ld->r, &tt, F_TENSOR_BUFFER, -1, &buffer))
            return RFAIL(ld, "tensor %d ('%.64s'): buffer", ti, t->name);
        if (eb_fb_i64(&ld->r, &tt, F_TENSOR_ARENA_OFFSET, -1, &arena_offset))
            return RFAIL(ld, "tensor %d ('%.64s'): arena_offset", ti, t->name);
        eb_status st = load_quant(ld, &tt, ti, t);
        if (st != EB_OK) return st;

        if (buffer >= 0) {
            if ((uint32_t)buffer >= ld->buffers.len)
                return bad(EB_ERR_INVALID_BUNDLE,
                           "tensor %d ('%.64s'): buffer index %d out of range (%u buffers)", ti,
                           t->name, (int)buffer, (unsigned)ld->buffers.len);
            uint64_t off = eb_fb_vec_u64(&ld->r, &ld->buffers, (uint32_t)buffer, 0);
            uint64_t sz = eb_fb_vec_u64(&ld->r, &ld->buffers, (uint32_t)buffer, 8);
            if (sz != bytes)
                return bad(EB_ERR_INVALID_BUNDLE,
                           "tensor %d ('%.64s'): buffer %d holds %llu bytes, the tensor needs "
                           "%llu (%lld x %s)", ti, t->name, (int)buffer, (unsigned long long)sz,
                           (unsigned long long)bytes, (long long)count, dtype_name(dt));
            /* off + sz <= ws_size and ws_off + ws_size <= size were checked in load_header */
            t->is_constant = 1;
            t->const_data = m->data + (size_t)(ld->ws_off + off);
        } else if (buffer == -1) {
            if (arena_offset < 0)
                return bad(EB_ERR_INVALID_BUNDLE,
                           "tensor %d ('%.64s'): activation without an arena_offset", ti,
                           t->name);
            if (arena_offset % dsize != 0)
                return bad(EB_ERR_INVALID_BUNDLE,
                           "tensor %d ('%.64s'): arena_offset %lld is not %d-byte aligned", ti,
                           t->name, (long long)arena_offset, dsize);
            if ((uint64_t)arena_offset > m->arena_declared ||
                bytes > m->arena_declared - (uint64_t)arena_offset)
                return bad(EB_ERR_INVALID_BUNDLE,
                           "tensor %d ('%.64s'): arena slot [%lld, +%llu) exceeds arena_size %llu",
                           ti, t->name, (long long)arena_offset, (unsigned long long)bytes,
                           (unsigned long long)m->arena_declared);
            t->is_constant = 0;
            t->arena_offset = arena_offset;
            if ((uint64_t)arena_offset + bytes > arena_end) arena_end = (uint64_t)arena_offset + bytes;
        } else {
            return bad(EB_ERR_INVALID_BUNDLE, "tensor %d ('%.64s'): bad buffer index %d", ti,
                       t->name, (int)buffer);
        }
        if ((st = check_dtype_quant(t, ti)) != EB_OK) return st;
        if (t->dtype == EB_FLOAT16 && (st = widen_fp16(t)) != EB_OK) return st;
    }
    /* Sessions allocate what the activations use, never more than declared. */
    uint64_t need = (arena_end + (EB_ALIGN - 1)) / EB_ALIGN * EB_ALIGN;
    if (need > m->arena_declared) need = m->arena_declared;
    if (need > (uint64_t)SIZE_MAX)
        return bad(EB_ERR_UNSUPPORTED, "arena of %llu bytes does not fit this platform",
                   (unsigned long long)need);
    m->arena_bytes = (size_t)need;
    return EB_OK;
}

/* Graph inputs (which = 0) or outputs (1). */
static eb_status load_io(loader *ld, int which) {
    eb_model *m = ld->m;
    const char *what = which ? "outputs" : "inputs";
    eb_fb_vec v;
    int present;
    if (eb_fb_vector(&ld->r, &ld->root, which ? F_MODEL_OUTPUTS : F_MODEL_INPUTS, 4, 4, &v,
                     &present))
        return RFAIL(ld, "Model.%s", what);
    if (v.len > (uint32_t)m->n_tensors)
        return bad(EB_ERR_INVALID_BUNDLE, "%u model %s but only %d tensors", (unsigned)v.len,
                   what, m->n_tensors);
    if (which && v.len == 0) return bad(EB_ERR_INVALID_BUNDLE, "the model has no outputs");
    int *idx = (int *)xcalloc(v.len, sizeof(int));
    if (!idx) return bad(EB_ERR_OUT_OF_MEMORY, "out of memory");
    if (which) {
        m->outputs = idx;
        m->n_outputs = (int)v.len;
    } else {
        m->inputs = idx;
        m->n_inputs = (int)v.len;
    }
    for (uint32_t i = 0; i < v.len; i++) {
        int32_t t = eb_fb_vec_i32(&ld->r, &v, i);
        if (t < 0 || t >= m->n_tensors)
            return bad(EB_ERR_INVALID_BUNDLE, "model %s[%u]: tensor index %d out of range", what,
                       (unsigned)i, (int)t);
        const eb_tensor *tp = &m->tensors[t];
        if (tp->is_constant)
            return bad(EB_ERR_INVALID_BUNDLE, "model %s[%u]: tensor '%.64s' is a constant", what,
                       (unsigned)i, tp->name);
        if (tp->dtype != EB_FLOAT32)
            return bad(EB_ERR_UNSUPPORTED, "model %s[%u]: tensor '%.64s' is not float32", what,
                       (unsigned)i, tp->name);
        if (which) {
            if (m->tensor_output_slot[t] >= 0)
                return bad(EB_ERR_INVALID_BUNDLE, "model outputs: tensor '%.64s' listed twice",
                           tp->name);
            m->tensor_output_slot[t] = (int)i;
        } else {
            if (ld->produced[t])
                return bad(EB_ERR_INVALID_BUNDLE, "model inputs: tensor '%.64s' listed twice",
                           tp->name);
            ld->produced[t] = 1; /* graph inputs are available from the start */
        }
        idx[i] = t;
    }
    return EB_OK;
}

/* Checks an op's tensor list; `kind`: 0 inputs, 1 outputs, 2 weights. Marks outputs produced. */
static eb_status check_list(loader *ld, int oi, const op_info *op, const eb_fb_vec *v, int kind) {
    eb_model *m = ld->m;
    static const char *const what[] = {"inputs", "outputs", "weights"};
    for (uint32_t k = 0; k < v->len; k++) {
        int32_t t = eb_fb_vec_i32(&ld->r, v, k);
        if (t < 0 || t >= m->n_tensors)
            return bad(EB_ERR_INVALID_BUNDLE, "op %d ('%.64s'): %s[%u]: tensor index %d out of range",
                       oi, op->name, what[kind], (unsigned)k, (int)t);
        const eb_tensor *tp = &m->tensors[t];
        if (kind == 2) {
            if (!tp->is_constant)
                return bad(EB_ERR_INVALID_BUNDLE,
                           "op %d ('%.64s'): weights[%u]: tensor '%.64s' is not a constant", oi,
                           op->name, (unsigned)k, tp->name);
            continue;
        }
        if (tp->is_constant)
            return bad(EB_ERR_INVALID_BUNDLE, "op %d ('%.64s'): %s[%u]: tensor '%.64s' is a constant",
                       oi, op->name, what[kind], (unsigned)k, tp->name);
        if (kind == 0 && !ld->produced[t])
            return bad(EB_ERR_INVALID_BUNDLE,
                       "op %d ('%.64s'): input '%.64s' is neither a model input nor produced by "
                       "an earlier op", oi, op->name, tp->name);
        if (kind == 1) {
            if (ld->produced[t])
                return bad(EB_ERR_INVALID_BUNDLE,
                           "op %d ('%.64s'): output '%.64s' is a model input or already written",
                           oi, op->name, tp->name);
            /* marked after all outputs are checked, so an op cannot read its own output */
        }
    }
    return EB_OK;
}

static eb_status load_ops(loader *ld, uint64_t *n_ptrs, uint64_t *n_attrs) {
    eb_model *m = ld->m;
    eb_fb_vec ov;
    int present;
    if (eb_fb_vector(&ld->r, &ld->root, F_MODEL_OPS, 4, 4, &ov, &present))
        return RFAIL(ld, "Model.ops");
    if (ov.len > MAX_OPS) return bad(EB_ERR_INVALID_BUNDLE, "too many ops (%u)", (unsigned)ov.len);
    ld->ops = (op_info *)xcalloc(ov.len, sizeof *ld->ops);
    if (!ld->ops) return bad(EB_ERR_OUT_OF_MEMORY, "out of memory (%u ops)", (unsigned)ov.len);
    m->n_nodes = (int)ov.len;
    *n_ptrs = 0;
    *n_attrs = 0;
    for (uint32_t i = 0; i < ov.len; i++) {
        op_info *op = &ld->ops[i];
        int oi = (int)i;
        if (eb_fb_vec_table(&ld->r, &ov, i, &op->t)) return RFAIL(ld, "op %d", oi);
        if (eb_fb_string(&ld->r, &op->t, F_OP_NAME, &op->name, NULL, &present))
            return RFAIL(ld, "op %d: name", oi);
        if (!present) return bad(EB_ERR_INVALID_BUNDLE, "op %d: name is missing", oi);
        int16_t type;
        if (eb_fb_i16(&ld->r, &op->t, F_OP_TYPE, 0, &type))
            return RFAIL(ld, "op %d ('%.64s'): type", oi, op->name);
        if (type < 0 || type >= EB_NUM_OP_TYPES)
            return bad(EB_ERR_INVALID_BUNDLE, "op %d ('%.64s'): unknown op type %d", oi, op->name,
                       (int)type);
        op->type = type;
        if (eb_find_kernel(type) == NULL && eb_find_int8_kernel(type) == NULL)
            return bad(EB_ERR_UNSUPPORTED,
                       "op %d ('%.64s'): op type %s is not implemented in this build", oi,
                       op->name, eb_op_type_name(type));
        if (eb_fb_vector(&ld->r, &op->t, F_OP_INPUTS, 4, 4, &op->inputs, &present))
            return RFAIL(ld, "op %d ('%.64s'): inputs", oi, op->name);
        if (eb_fb_vector(&ld->r, &op->t, F_OP_OUTPUTS, 4, 4, &op->outputs, &present))
            return RFAIL(ld, "op %d ('%.64s'): outputs", oi, op->name);
        if (eb_fb_vector(&ld->r, &op->t, F_OP_WEIGHTS, 4, 4, &op->weights, &present))
            return RFAIL(ld, "op %d ('%.64s'): weights", oi, op->name);
        if (eb_fb_vector(&ld->r, &op->t, F_OP_ATTRS, 4, 4, &op->attrs, &present))
            return RFAIL(ld, "op %d ('%.64s'): attrs", oi, op->name);
        if (op->inputs.len > MAX_OP_LIST || op->outputs.len > MAX_OP_LIST ||
            op->weights.len > MAX_OP_LIST || op->attrs.len > MAX_OP_LIST)
            return bad(EB_ERR_INVALID_BUNDLE, "op %d ('%.64s'): too many inputs/outputs/weights/attrs",
                       oi, op->name);
        eb_fb_vec fused;
        if (eb_fb_vector(&ld->r, &op->t, F_OP_FUSED, 4, 4, &fused, &present))
            return RFAIL(ld, "op %d ('%.64s'): fused", oi, op->name);
        for (uint32_t k = 0; k < fused.len; k++)
            if (eb_fb_vec_string(&ld->r, &fused, k, NULL, NULL))
                return RFAIL(ld, "op %d ('%.64s'): fused[%u]", oi, op->name, (unsigned)k);
        eb_fb_vec mults; /* [float] (lr_mult, decay_mult) pairs, read by fine-tuning */
        if (eb_fb_vector(&ld->r, &op->t, F_OP_PARAM_MULTS, 4, 4, &mults, &present))
            return RFAIL(ld, "op %d ('%.64s'): param_mults", oi, op->name);

        eb_status st;
        if ((st = check_list(ld, oi, op, &op->inputs, 0)) != EB_OK) return st;
        if ((st = check_list(ld, oi, op, &op->outputs, 1)) != EB_OK) return st;
        if ((st = check_list(ld, oi, op, &op->weights, 2)) != EB_OK) return st;
        for (uint32_t k = 0; k < op->outputs.len; k++) {
            int32_t t = eb_fb_vec_i32(&ld->r, &op->outputs, k);
            if (ld->produced[t])
                return bad(EB_ERR_INVALID_BUNDLE, "op %d ('%.64s'): output '%.64s' listed twice",
                           oi, op->name, m->tensors[t].name);
            ld->produced[t] = 1;
        }
        *n_ptrs += (uint64_t)op->inputs.len + op->outputs.len + op->weights.len;
        *n_attrs += op->attrs.len;
    }
    for (int i = 0; i < m->n_outputs; i++) {
        int t = m->outputs[i];
        if (!ld->produced[t])
            return bad(EB_ERR_INVALID_BUNDLE,
                       "model output '%.64s' is neither a model input nor produced by an op",
                       m->tensors[t].name);
    }
    return EB_OK;
}

static eb_status load_attrs(loader *ld, int oi, const op_info *op, eb_attr_entry *items) {
    for (uint32_t k = 0; k < op->attrs.len; k++) {
        eb_attr_entry *e = &items[k];
        eb_fb_table at;
        int present;
        if (eb_fb_vec_table(&ld->r, &op->attrs, k, &at))
            return RFAIL(ld, "op %d ('%.64s'): attrs[%u]", oi, op->name, (unsigned)k);
        if (eb_fb_string(&ld->r, &at, F_ATTR_KEY, &e->key, NULL, &present))
            return RFAIL(ld, "op %d ('%.64s'): attrs[%u].key", oi, op->name, (unsigned)k);
        if (!present)
            return bad(EB_ERR_INVALID_BUNDLE, "op %d ('%.64s'): attrs[%u]: key is missing", oi,
                       op->name, (unsigned)k);
        int8_t kind;
        if (eb_fb_i8(&ld->r, &at, F_ATTR_KIND, EB_ATTR_INT, &kind))
            return RFAIL(ld, "op %d ('%.64s'): attribute '%.64s': kind", oi, op->name, e->key);
        if (kind < EB_ATTR_INT || kind > EB_ATTR_STRING)
            return bad(EB_ERR_INVALID_BUNDLE, "op %d ('%.64s'): attribute '%.64s': unknown kind %d",
                       oi, op->name, e->key, (int)kind);
        e->kind = kind;
        eb_fb_vec v;
        if (eb_fb_i64(&ld->r, &at, F_ATTR_I, 0, &e->i) || eb_fb_f64(&ld->r, &at, F_ATTR_F, 0.0, &e->f))
            return RFAIL(ld, "op %d ('%.64s'): attribute '%.64s'", oi, op->name, e->key);
        if (eb_fb_vector(&ld->r, &at, F_ATTR_INTS, 8, 8, &v, &present))
            return RFAIL(ld, "op %d ('%.64s'): attribute '%.64s': ints", oi, op->name, e->key);
        e->n_ints = v.len;
        e->ints = ld->r.buf + v.data;
        if (eb_fb_vector(&ld->r, &at, F_ATTR_FLOATS, 8, 8, &v, &present))
            return RFAIL(ld, "op %d ('%.64s'): attribute '%.64s': floats", oi, op->name, e->key);
        e->n_floats = v.len;
        e->floats = ld->r.buf + v.data;
        if (eb_fb_string(&ld->r, &at, F_ATTR_S, &e->s, NULL, &present))
            return RFAIL(ld, "op %d ('%.64s'): attribute '%.64s': s", oi, op->name, e->key);
        if (!present) e->s = "";
        for (uint32_t j = 0; j < k; j++)
            if (strcmp(items[j].key, e->key) == 0)
                return bad(EB_ERR_INVALID_BUNDLE, "op %d ('%.64s'): attribute '%.64s' given twice",
                           oi, op->name, e->key);
    }
    return EB_OK;
}

static eb_status check_string(loader *ld, const eb_fb_table *t, int id, const char *what) {
    int present;
    if (eb_fb_string(&ld->r, t, id, NULL, NULL, &present)) return RFAIL(ld, "%s", what);
    return EB_OK;
}

static eb_status load_metadata(loader *ld) {
    eb_fb_table md, pp;
    int present;
    eb_status st;
    if (eb_fb_table_field(&ld->r, &ld->root, F_MODEL_METADATA, &md, &present))
        return RFAIL(ld, "Model.metadata");
    if (!present) return EB_OK;
    static const struct { int id; const char *what; } strings[] = {
        {F_META_MODEL_NAME, "metadata.model_name"},
        {F_META_SOURCE_PROTOTXT, "metadata.source_prototxt"},
        {F_META_SOURCE_CAFFEMODEL, "metadata.source_caffemodel"},
        {F_META_SOURCE_SHA1, "metadata.source_sha1"},
        {F_META_CONVERTER_VERSION, "metadata.converter_version"},
        {F_META_CONVERTER_OPTIONS, "metadata.converter_options"},
        {F_META_EXTRA, "metadata.extra"},
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        if ((st = check_string(ld, &md, strings[i].id, strings[i].what)) != EB_OK) return st;
    eb_fb_vec v;
    if (eb_fb_vector(&ld->r, &md, F_META_LABELS, 4, 4, &v, &present))
        return RFAIL(ld, "metadata.labels");
    for (uint32_t i = 0; i < v.len; i++)
        if (eb_fb_vec_string(&ld->r, &v, i, NULL, NULL))
            return RFAIL(ld, "metadata.labels[%u]", (unsigned)i);

    if (eb_fb_table_field(&ld->r, &md, F_META_PREPROCESSING, &pp, &present))
        return RFAIL(ld, "metadata.preprocessing");
    if (!present) return EB_OK;
    if (eb_fb_vector(&ld->r, &pp, F_PRE_MEAN, 8, 8, &v, &present)) /* [double] */
        return RFAIL(ld, "preprocessing.mean");
    if (eb_fb_vector(&ld->r, &pp, F_PRE_INPUT_SIZE, 4, 4, &v, &present))
        return RFAIL(ld, "preprocessing.input_size");
    if ((st = check_string(ld, &pp, F_PRE_CHANNEL_ORDER, "preprocessing.channel_order")) != EB_OK)
        return st;
    int32_t mean_file;
    double scale;
    uint8_t gray;
    if (eb_fb_i32(&ld->r, &pp, F_PRE_MEAN_FILE, -1, &mean_file))
        return RFAIL(ld, "preprocessing.mean_file");
    if (eb_fb_f64(&ld->r, &pp, F_PRE_SCALE, 1.0, &scale))
        return RFAIL(ld, "preprocessing.scale");
    if (eb_fb_u8(&ld->r, &pp, F_PRE_GRAYSCALE, 0, &gray))
        return RFAIL(ld, "preprocessing.grayscale");
    if (mean_file != -1 &&
        (mean_file < 0 || mean_file >= ld->m->n_tensors || !ld->m->tensors[mean_file].is_constant))
        return bad(EB_ERR_INVALID_BUNDLE,
                   "preprocessing.mean_file %d is not the index of a constant tensor",
                   (int)mean_file);
    return EB_OK;
}

/* The kernel of node i: int8 (Quantize/Dequantize, or an INT8 first input or first output),
 * else float with every input, output and weight FLOAT32 (FLOAT16 weights were widened): an
 * int8 tensor never reaches a float kernel, nor a float one an int8 kernel's INT8 slot (each
 * int8 prepare() checks its tensors' dtypes). */
static eb_status select_kernel(eb_model *m, int i) {
    const eb_node *node = &m->nodes[i];
    const char *type = eb_op_type_name(node->type);
    const int int8 = node->type == EB_OP_Quantize || node->type == EB_OP_Dequantize ||
                     (node->n_inputs > 0 && node->inputs[0]->dtype == EB_INT8) ||
                     (node->n_outputs > 0 && node->outputs[0]->dtype == EB_INT8);
    if (int8) {
        m->kernels[i] = eb_find_int8_kernel(node->type);
        if (!m->kernels[i])
            return bad(EB_ERR_UNSUPPORTED,
                       "op '%.64s' (%s): this op has no int8 kernel, but its %s '%.64s' is INT8",
                       node->name, type,
                       node->n_inputs > 0 && node->inputs[0]->dtype == EB_INT8 ? "input"
                                                                                 : "output",
                       node->n_inputs > 0 && node->inputs[0]->dtype == EB_INT8
                           ? node->inputs[0]->name : node->outputs[0]->name);
        return EB_OK;
    }
    m->kernels[i] = eb_find_kernel(node->type);
    if (!m->kernels[i])
        return bad(EB_ERR_UNSUPPORTED, "op '%.64s' (%s): no float32 kernel in this build",
                   node->name, type);
    static const char *const roles[3] = {"input", "output", "weight"};
    const int counts[3] = {node->n_inputs, node->n_outputs, node->n_weights};
    const eb_tensor *const *lists[3] = {node->inputs, node->outputs, node->weights};
    for (int l = 0; l < 3; l++)
        for (int k = 0; k < counts[l]; k++)
            if (lists[l][k]->dtype != EB_FLOAT32)
                return bad(EB_ERR_UNSUPPORTED,
                           "op '%.64s' (%s): %s %d '%.64s' is %s, but this op runs float32 "
                           "here (its int8 kernel is chosen by an INT8 first input or output)",
                           node->name, type, roles[l], k, lists[l][k]->name,
                           dtype_name(lists[l][k]->dtype));
    return EB_OK;
}

/* Builds the nodes and runs every kernel's prepare(). */
static eb_status build_nodes(loader *ld, uint64_t n_ptrs, uint64_t n_attrs) {
    eb_model *m = ld->m;
    int n = m->n_nodes;
    if (n_ptrs > (uint64_t)SIZE_MAX / sizeof(void *) || n_attrs > (uint64_t)SIZE_MAX / sizeof(eb_attr_entry))
        return bad(EB_ERR_OUT_OF_MEMORY, "out of memory");
    m->nodes = (eb_node *)xcalloc((size_t)n, sizeof *m->nodes);
    m->kernels = (const eb_op_kernel **)xcalloc((size_t)n, sizeof *m->kernels);
    m->attrs = (eb_attrs *)xcalloc((size_t)n, sizeof *m->attrs);
    m->ptrs = (const eb_tensor **)xcalloc((size_t)n_ptrs, sizeof *m->ptrs);
    m->attr_items = (eb_attr_entry *)xcalloc((size_t)n_attrs, sizeof *m->attr_items);
    if (!m->nodes || !m->kernels || !m->attrs || !m->ptrs || !m->attr_items)
        return bad(EB_ERR_OUT_OF_MEMORY, "out of memory (%d ops)", n);

    size_t pi = 0, ai = 0;
    for (int i = 0; i < n; i++) {
        const op_info *op = &ld->ops[i];
        eb_node *node = &m->nodes[i];
        node->name = op->name;
        node->type = op->type;
        m->kernels[i] = NULL; /* chosen below, from the tensors' dtypes */
        const eb_fb_vec *lists[3] = {&op->inputs, &op->outputs, &op->weights};
        const eb_tensor **arrays[3];
        for (int l = 0; l < 3; l++) {
            arrays[l] = m->ptrs + pi;
            for (uint32_t k = 0; k < lists[l]->len; k++)
                m->ptrs[pi++] = &m->tensors[eb_fb_vec_i32(&ld->r, lists[l], k)];
        }
        node->n_inputs = (int)op->inputs.len;
        node->n_outputs = (int)op->outputs.len;
        node->n_weights = (int)op->weights.len;
        node->inputs = arrays[0];
        node->outputs = arrays[1];
        node->weights = arrays[2];
        eb_status st = load_attrs(ld, i, op, m->attr_items + ai);
        if (st != EB_OK) return st;
        m->attrs[i].n = (int)op->attrs.len;
        m->attrs[i].items = m->attr_items + ai;
        ai += op->attrs.len;
        node->attrs = &m->attrs[i];
        if ((st = select_kernel(m, i)) != EB_OK) return st;
    }

    size_t stride = 0;
    for (int i = 0; i < n; i++) {
        eb_node *node = &m->nodes[i];
        eb_error err;
        err.msg[0] = '\0';
        node->params = NULL;
        node->scratch_bytes = 0;
        eb_status st = m->kernels[i]->prepare(node, &err);
        if (st != EB_OK) {
            if (st == EB_ERR_INVALID_BUNDLE && strncmp(err.msg, "invalid bundle", 14) != 0)
                return eb_set_error(st, "invalid bundle: %s",
                                    err.msg[0] ? err.msg : "prepare failed");
            if (err.msg[0]) return eb_set_error(st, "%s", err.msg);
            return eb_set_error(st, "op '%.64s' (%s): prepare failed (%s)", node->name,
                                eb_op_type_name(node->type), eb_status_name(st));
        }
        if ((uint64_t)node->scratch_bytes > MAX_SCRATCH_BYTES)
            return bad(EB_ERR_UNSUPPORTED, "op '%.64s' (%s): needs %llu bytes of scratch memory",
                       node->name, eb_op_type_name(node->type),
                       (unsigned long long)node->scratch_bytes);
        size_t s = (node->scratch_bytes + (EB_ALIGN - 1)) / EB_ALIGN * EB_ALIGN;
        if (s > stride) stride = s;
    }
    m->scratch_stride = stride;
    return EB_OK;
}

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void release_storage(eb_model *m) {
    if (m->map) munmap(m->map, m->map_size);
    free(m->owned);
    m->map = NULL;
    m->owned = NULL;
}

void eb_model_free(eb_model *m) {
    if (!m) return;
    if (m->nodes)
        for (int i = 0; i < m->n_nodes; i++) free(m->nodes[i].params);
    free(m->nodes);
    free(m->kernels);
    free(m->attrs);
    free(m->ptrs);
    free(m->attr_items);
    if (m->tensors)
        for (int i = 0; i < m->n_tensors; i++) {
            free(m->tensors[i].core_owned[0]);
            free(m->tensors[i].core_owned[1]);
        }
    free(m->tensors);
    free(m->tensor_output_slot);
    free(m->inputs);
    free(m->outputs);
    release_storage(m);
    free(m);
}

/* Verifies the bytes held by m (data/size set) and builds the rest. On failure frees m. */
static eb_status finish_load(eb_model *m, eb_model **out) {
    loader ld;
    memset(&ld, 0, sizeof ld);
    ld.m = m;
    eb_status st;
    uint64_t n_ptrs = 0, n_attrs = 0;
    if (!host_is_little_endian())
        st = bad(EB_ERR_UNSUPPORTED, "big-endian hosts are not supported");
    else if ((st = load_header(&ld)) != EB_OK) {
    } else if ((st = load_tensors(&ld)) != EB_OK) {
    } else if ((st = load_io(&ld, 0)) != EB_OK) {
    } else if ((st = load_io(&ld, 1)) != EB_OK) {
    } else if ((st = load_ops(&ld, &n_ptrs, &n_attrs)) != EB_OK) {
    } else if ((st = load_metadata(&ld)) != EB_OK) {
    } else {
        st = build_nodes(&ld, n_ptrs, n_attrs);
    }
    free(ld.ops);
    free(ld.produced);
    if (st != EB_OK) {
        eb_model_free(m);
        return st;
    }
    *out = m;
    return EB_OK;
}

/* A 64-aligned copy of size bytes; *block receives what to free. */
static uint8_t *aligned_copy(const void *data, size_t size, void **block) {
    *block = NULL;
    if (size > SIZE_MAX - EB_ALIGN) return NULL;
    uint8_t *raw = (uint8_t *)malloc(size + EB_ALIGN);
    if (!raw) return NULL;
    uintptr_t p = ((uintptr_t)raw + (EB_ALIGN - 1)) & ~(uintptr_t)(EB_ALIGN - 1);
    uint8_t *aligned = raw + (p - (uintptr_t)raw);
    if (data) memcpy(aligned, data, size);
    *block = raw;
    return aligned;
}

eb_status eb_model_load_memory(const void *data, size_t size, int copy, eb_model **out) {
    if (!out) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_model_load_memory: out is NULL");
    *out = NULL;
    if (!data && size > 0)
        return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_model_load_memory: data is NULL");
    if (size == 0) return bad(EB_ERR_INVALID_BUNDLE, "empty buffer");
    eb_model *m = (eb_model *)calloc(1, sizeof *m);
    if (!m) return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
    /* Weights are used in place, and kernels read them as aligned floats: bytes that are not
     * 64-byte aligned are copied even when copy == 0. */
    if (copy || ((uintptr_t)data % EB_ALIGN) != 0) {
        uint8_t *p = aligned_copy(data, size, &m->owned);
        if (!p) {
            free(m);
            return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory copying %zu bytes", size);
        }
        m->data = p;
    } else {
        m->data = (const uint8_t *)data;
    }
    m->size = size;
    return finish_load(m, out);
}

eb_status eb_model_load_file(const char *path, eb_model **out) {
    if (!out) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_model_load_file: out is NULL");
    *out = NULL;
    if (!path) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_model_load_file: path is NULL");
    int fd;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return eb_set_error(EB_ERR_IO, "cannot open '%.300s': %s", path, strerror(errno));
    struct stat stt;
    if (fstat(fd, &stt) != 0) {
        int e = errno;
        close(fd);
        return eb_set_error(EB_ERR_IO, "cannot stat '%.300s': %s", path, strerror(e));
    }
    if (!S_ISREG(stt.st_mode)) {
        close(fd);
        return eb_set_error(EB_ERR_IO, "'%.300s' is not a regular file", path);
    }
    if (stt.st_size <= 0) {
        close(fd);
        return bad(EB_ERR_INVALID_BUNDLE, "'%.300s' is empty", path);
    }
    if ((uint64_t)stt.st_size > (uint64_t)SIZE_MAX - EB_ALIGN) {
        close(fd);
        return eb_set_error(EB_ERR_IO, "'%.300s' is too large to map", path);
    }
    size_t size = (size_t)stt.st_size;
    eb_model *m = (eb_model *)calloc(1, sizeof *m);
    if (!m) {
        close(fd);
        return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map != MAP_FAILED) {
        m->map = map;
        m->map_size = size;
        m->data = (const uint8_t *)map;
    } else {
        /* No mmap (some filesystems): read the file into an aligned block. */
        uint8_t *p = aligned_copy(NULL, size, &m->owned);
        if (!p) {
            close(fd);
            free(m);
            return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory reading %zu bytes", size);
        }
        size_t got = 0;
        while (got < size) {
            ssize_t k = read(fd, p + got, size - got);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) {
                int e = k < 0 ? errno : 0;
                close(fd);
                free(m->owned);
                free(m);
                return eb_set_error(EB_ERR_IO, "cannot read '%.300s': %s", path,
                                    e ? strerror(e) : "file shrank while reading");
            }
            got += (size_t)k;
        }
        m->data = p;
    }
    close(fd);
    m->size = size;
    return finish_load(m, out);
}

/* ---- model queries ----------------------------------------------------------------------- */

static const eb_tensor *io_tensor(const eb_model *m, int which, int index) {
    if (!m) return NULL;
    if (which == 0) {
        if (index < 0 || index >= m->n_inputs) return NULL;
        return &m->tensors[m->inputs[index]];
    }
    if (which == 1) {
        if (index < 0 || index >= m->n_outputs) return NULL;
        return &m->tensors[m->outputs[index]];
    }
    return NULL;
}

int eb_model_num_inputs(const eb_model *m) { return m ? m->n_inputs : -1; }
int eb_model_num_outputs(const eb_model *m) { return m ? m->n_outputs : -1; }
int eb_model_num_ops(const eb_model *m) { return m ? m->n_nodes : -1; }
size_t eb_model_arena_size(const eb_model *m) { return m ? m->arena_bytes : 0; }

const char *eb_model_io_name(const eb_model *m, int which, int index) {
    const eb_tensor *t = io_tensor(m, which, index);
    return t ? t->name : NULL;
}

int eb_model_io_shape(const eb_model *m, int which, int index, int64_t dims[EB_MAX_DIMS]) {
    const eb_tensor *t = io_tensor(m, which, index);
    if (!t) return -1;
    if (dims)
        for (int d = 0; d < t->ndim; d++) dims[d] = t->dims[d];
    return t->ndim;
}

eb_dtype eb_model_io_dtype(const eb_model *m, int which, int index) {
    const eb_tensor *t = io_tensor(m, which, index);
    return t ? t->dtype : (eb_dtype)-1;
}

int eb_model_find_io(const eb_model *m, int which, const char *name) {
    if (!m || !name || (which != 0 && which != 1)) return -1;
    int n = which ? m->n_outputs : m->n_inputs;
    for (int i = 0; i < n; i++)
        if (strcmp(io_tensor(m, which, i)->name, name) == 0) return i;
    return -1;
}

int eb_same_shape(const eb_tensor *a, const eb_tensor *b) {
    if (!a || !b || a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->dims[d] != b->dims[d]) return 0;
    return 1;
}
