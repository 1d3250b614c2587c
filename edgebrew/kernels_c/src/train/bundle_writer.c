/* Re-serializing a bundle (bundle.fbs) with a fine-tuned layer: a small flatbuffers writer.
 *
 * The writer emits the buffer front to back: the root offset and identifier, then each table
 * (its vtable first, then the inline fields), then the objects it refers to. Every uoffset
 * therefore points forward, as flatbuffers requires, and is patched once its target is
 * written. Scalars are aligned to their size relative to the buffer start (the file start),
 * which is what the C reader checks. Every table and field of bundle.fbs is copied through
 * the bounds-checked reader; the changes (shapes, arena slots, the trained weights with their
 * dtype and Tensor.quant, the num_output attribute, param_mults, labels, metadata.extra) are
 * applied on the way. The
 * weight segment follows, every buffer 64-byte aligned.
 */
#include <stdlib.h>
#include <string.h>

#include "core/bundle_reader.h"
#include "core/core.h"
#include "train.h"

/* Field ids (vtable slots) in bundle.fbs declaration order. */
enum { A_KEY, A_KIND, A_I, A_F, A_INTS, A_FLOATS, A_S, A_NFIELDS };
enum { Q_SCALE, Q_ZERO_POINT, Q_AXIS, Q_NFIELDS };
enum { T_NAME, T_SHAPE, T_DTYPE, T_BUFFER, T_ARENA_OFFSET, T_QUANT, T_NFIELDS };
enum { O_NAME, O_TYPE, O_INPUTS, O_OUTPUTS, O_WEIGHTS, O_ATTRS, O_FUSED, O_PARAM_MULTS,
       O_NFIELDS };
enum { P_MEAN, P_MEAN_FILE, P_SCALE, P_CHANNEL_ORDER, P_INPUT_SIZE, P_GRAYSCALE, P_NFIELDS };
enum { MD_MODEL_NAME, MD_SOURCE_PROTOTXT, MD_SOURCE_CAFFEMODEL, MD_SOURCE_SHA1,
       MD_PREPROCESSING, MD_LABELS, MD_CONVERTER_VERSION, MD_CONVERTER_OPTIONS, MD_EXTRA,
       MD_NFIELDS };
enum { M_FORMAT_VERSION, M_TENSORS, M_OPS, M_INPUTS, M_OUTPUTS, M_BUFFERS, M_ARENA_SIZE,
       M_WEIGHT_SEGMENT_OFFSET, M_WEIGHT_SEGMENT_SIZE, M_METADATA, M_NFIELDS };

#define MAX_FIELDS 16

/* ---- the writer ---------------------------------------------------------------------------- */

typedef struct fbw {
    uint8_t *buf;
    size_t len, cap;
    int oom;
} fbw;

static int w_reserve(fbw *w, size_t n) {
    if (w->oom) return -1;
    if (n <= w->cap - w->len) return 0;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap - w->len < n) {
        if (cap > SIZE_MAX / 2) {
            w->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    uint8_t *p = (uint8_t *)realloc(w->buf, cap);
    if (!p) {
        w->oom = 1;
        return -1;
    }
    w->buf = p;
    w->cap = cap;
    return 0;
}

static size_t w_pad(fbw *w, size_t align) {
    while (w->len % align) {
        if (w_reserve(w, 1)) return w->len;
        w->buf[w->len++] = 0;
    }
    return w->len;
}

static size_t w_bytes(fbw *w, const void *p, size_t n) {
    size_t at = w->len;
    if (w_reserve(w, n)) return at;
    if (n) memcpy(w->buf + w->len, p, n);
    w->len += n;
    return at;
}

static void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static size_t w_scalar(fbw *w, uint64_t v, int n) {
    uint8_t b[8];
    put_le(b, v, n);
    return w_bytes(w, b, (size_t)n);
}

static void w_patch(fbw *w, size_t at, size_t target) {
    if (w->oom) return;
    put_le(w->buf + at, (uint64_t)(target - at), 4);
}

static void w_set_u64(fbw *w, size_t at, uint64_t v) {
    if (!w->oom) put_le(w->buf + at, v, 8);
}

/* A table field: scalar of `size` bytes, or a uoffset (is_off) patched later. */
typedef struct fld {
    int present;
    int size;
    int is_off;
    uint64_t bits;
} fld;

typedef struct tbl {
    size_t pos;
    size_t at[MAX_FIELDS]; /* position of each present field */
} tbl;

static void w_table(fbw *w, const fld *f, int n, tbl *t) {
    memset(t, 0, sizeof *t);
    /* inline layout: soffset at 0, then fields by decreasing size, each aligned */
    uint16_t off[MAX_FIELDS] = {0};
    size_t cur = 4;
    for (int size = 8; size >= 1; size /= 2)
        for (int i = 0; i < n; i++) {
            int sz = f[i].is_off ? 4 : f[i].size;
            if (!f[i].present || sz != size) continue;
            cur = (cur + (size_t)size - 1) / (size_t)size * (size_t)size;
            off[i] = (uint16_t)cur;
            cur += (size_t)size;
        }
    size_t tsize = (cur + 3) / 4 * 4;
    /* vtable */
    w_pad(w, 2);
    size_t vt = w->len;
    w_scalar(w, 4 + 2 * (uint64_t)n, 2);
    w_scalar(w, tsize, 2);
    for (int i = 0; i < n; i++) w_scalar(w, off[i], 2);
    /* table, 8-aligned so 8-byte fields are aligned */
    w_pad(w, 8);
    size_t pos = w->len;
    if (w_reserve(w, tsize)) return;
    memset(w->buf + pos, 0, tsize);
    w->len += tsize;
    put_le(w->buf + pos, (uint64_t)(int64_t)(pos - vt), 4); /* soffset: table - vtable */
    for (int i = 0; i < n; i++) {
        if (!f[i].present) continue;
        t->at[i] = pos + off[i];
        if (!f[i].is_off) put_le(w->buf + pos + off[i], f[i].bits, f[i].size);
    }
    t->pos = pos;
}

/* A vector of `n` elements of `elem` bytes (raw little-endian), data aligned to `align`. */
static size_t w_vec(fbw *w, const void *data, uint32_t n, uint32_t elem, uint32_t align) {
    size_t a = align < 4 ? 4 : align;
    while (!w->oom && (w->len + 4) % a) w_bytes(w, "\0", 1);
    size_t pos = w_scalar(w, n, 4);
    w_bytes(w, data, (size_t)n * elem);
    return pos;
}

static size_t w_str(fbw *w, const char *s, size_t n) {
    w_pad(w, 4);
    size_t pos = w_scalar(w, n, 4);
    w_bytes(w, s, n);
    w_bytes(w, "\0", 1);
    return pos;
}

/* ---- copying through the reader ------------------------------------------------------------ */

typedef struct cp {
    eb_fb r;
    fbw w;
    const eb_rewrite *rw;
    int failed;
} cp;

#define CK(x)                  \
    do {                       \
        if (x) {               \
            c->failed = 1;     \
            return 0;          \
        }                      \
    } while (0)

static fld scalar_field(uint64_t bits, int size) {
    fld f = {1, size, 0, bits};
    return f;
}

static fld off_field(int present) {
    fld f = {present, 4, 1, 0};
    return f;
}

/* Copies a string field of table t into the writer; returns its position or 0 if absent. */
static size_t copy_str(cp *c, const eb_fb_table *t, int id) {
    const char *s;
    uint32_t n;
    int present;
    CK(eb_fb_string(&c->r, t, id, &s, &n, &present));
    if (!present) return 0;
    return w_str(&c->w, s, n);
}

static size_t copy_vec(cp *c, const eb_fb_table *t, int id, uint32_t elem, uint32_t align) {
    eb_fb_vec v;
    int present;
    CK(eb_fb_vector(&c->r, t, id, elem, align, &v, &present));
    if (!present) return 0;
    return w_vec(&c->w, c->r.buf + v.data, v.len, elem, align);
}

static int has_field(cp *c, const eb_fb_table *t, int id) {
    /* presence of an offset field: a vector probe of 1-byte elements never fails on alignment */
    eb_fb_vec v;
    int present = 0;
    (void)v;
    uint64_t entry = 4 + 2 * (uint64_t)id;
    if (entry + 2 > t->vt_size) return 0;
    present = eb_fb_ld_u16(&c->r, t->vt + (size_t)entry) != 0;
    return present;
}

static void patch_opt(cp *c, const tbl *t, int id, size_t target) {
    if (target) w_patch(&c->w, t->at[id], target);
}

static size_t copy_quant(cp *c, const eb_fb_table *q) {
    int32_t axis;
    CK(eb_fb_i32(&c->r, q, Q_AXIS, -1, &axis));
    fld f[Q_NFIELDS] = {off_field(has_field(c, q, Q_SCALE)),
                        off_field(has_field(c, q, Q_ZERO_POINT)),
                        scalar_field((uint32_t)axis, 4)};
    tbl t;
    w_table(&c->w, f, Q_NFIELDS, &t);
    if (f[Q_SCALE].present) patch_opt(c, &t, Q_SCALE, copy_vec(c, q, Q_SCALE, 4, 4));
    if (f[Q_ZERO_POINT].present)
        patch_opt(c, &t, Q_ZERO_POINT, copy_vec(c, q, Q_ZERO_POINT, 8, 8));
    return t.pos;
}

/* A new Tensor.quant: `n` scales, zero points 0, on `axis`. */
static size_t write_quant(cp *c, const float *scale, int n, int axis) {
    fld f[Q_NFIELDS] = {off_field(1), off_field(1), scalar_field((uint32_t)axis, 4)};
    tbl t;
    w_table(&c->w, f, Q_NFIELDS, &t);
    uint8_t *b = (uint8_t *)calloc((size_t)n * 8 + 8, 1);
    if (!b) {
        c->w.oom = 1;
        return t.pos;
    }
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &scale[i], 4);
        put_le(b + 4 * (size_t)i, u, 4);
    }
    patch_opt(c, &t, Q_SCALE, w_vec(&c->w, b, (uint32_t)n, 4, 4));
    memset(b, 0, (size_t)n * 8);
    patch_opt(c, &t, Q_ZERO_POINT, w_vec(&c->w, b, (uint32_t)n, 8, 8));
    free(b);
    return t.pos;
}

static size_t copy_tensor(cp *c, const eb_fb_table *tt, int ti, const uint64_t *buf_map) {
    const eb_rewrite *rw = c->rw;
    int8_t dtype;
    int32_t buffer;
    int64_t arena;
    CK(eb_fb_i8(&c->r, tt, T_DTYPE, 0, &dtype));
    CK(eb_fb_i32(&c->r, tt, T_BUFFER, -1, &buffer));
    CK(eb_fb_i64(&c->r, tt, T_ARENA_OFFSET, -1, &arena));
    int changed = ti < rw->n_tensors && rw->changed[ti];
    if (changed && buffer < 0) arena = rw->new_arena_offset[ti];
    (void)buf_map;
    if (rw->replace_dtype)
        for (int k = 0; k < rw->n_replace; k++)
            if (rw->replace_tensor[k] == ti && rw->replace_dtype[k] >= 0)
                dtype = (int8_t)rw->replace_dtype[k];
    int qk = -1;
    for (int k = 0; k < rw->n_quant; k++)
        if (rw->quant_tensor[k] == ti) qk = k;
    int has_quant = qk >= 0 ? rw->quant_count[qk] > 0 : has_field(c, tt, T_QUANT);
    fld f[T_NFIELDS] = {off_field(1), off_field(changed || has_field(c, tt, T_SHAPE)),
                        scalar_field((uint8_t)dtype, 1), scalar_field((uint32_t)buffer, 4),
                        scalar_field((uint64_t)arena, 8), off_field(has_quant)};
    tbl t;
    w_table(&c->w, f, T_NFIELDS, &t);
    patch_opt(c, &t, T_NAME, copy_str(c, tt, T_NAME));
    if (changed) {
        uint8_t dims[EB_MAX_DIMS * 8];
        int nd = rw->new_ndim[ti];
        for (int d = 0; d < nd; d++) put_le(dims + 8 * d, (uint64_t)rw->new_dims[ti][d], 8);
        patch_opt(c, &t, T_SHAPE, w_vec(&c->w, dims, (uint32_t)nd, 8, 8));
    } else if (f[T_SHAPE].present) {
        patch_opt(c, &t, T_SHAPE, copy_vec(c, tt, T_SHAPE, 8, 8));
    }
    if (qk >= 0) {
        if (has_quant)
            patch_opt(c, &t, T_QUANT,
                      write_quant(c, rw->quant_scale[qk], rw->quant_count[qk], rw->quant_axis[qk]));
    } else if (f[T_QUANT].present) {
        eb_fb_table q;
        int present;
        CK(eb_fb_table_field(&c->r, tt, T_QUANT, &q, &present));
        if (present) patch_opt(c, &t, T_QUANT, copy_quant(c, &q));
    }
    return t.pos;
}

static size_t copy_attr(cp *c, const eb_fb_table *at, int replace_i, int64_t new_i) {
    int8_t kind;
    int64_t i;
    double fv;
    uint64_t fbits;
    CK(eb_fb_i8(&c->r, at, A_KIND, 0, &kind));
    CK(eb_fb_i64(&c->r, at, A_I, 0, &i));
    CK(eb_fb_f64(&c->r, at, A_F, 0.0, &fv));
    if (replace_i) i = new_i;
    memcpy(&fbits, &fv, 8);
    fld f[A_NFIELDS] = {off_field(1), scalar_field((uint8_t)kind, 1),
                        scalar_field((uint64_t)i, 8), scalar_field(fbits, 8),
                        off_field(has_field(c, at, A_INTS)), off_field(has_field(c, at, A_FLOATS)),
                        off_field(has_field(c, at, A_S))};
    tbl t;
    w_table(&c->w, f, A_NFIELDS, &t);
    patch_opt(c, &t, A_KEY, copy_str(c, at, A_KEY));
    if (f[A_INTS].present) patch_opt(c, &t, A_INTS, copy_vec(c, at, A_INTS, 8, 8));
    if (f[A_FLOATS].present) patch_opt(c, &t, A_FLOATS, copy_vec(c, at, A_FLOATS, 8, 8));
    if (f[A_S].present) patch_opt(c, &t, A_S, copy_str(c, at, A_S));
    return t.pos;
}

/* A vector of tables or strings: writes the offsets vector, then each element. */
typedef size_t (*elem_fn)(cp *c, const eb_fb_vec *v, uint32_t i, void *ctx);

static size_t copy_offvec(cp *c, const eb_fb_vec *v, elem_fn fn, void *ctx) {
    w_pad(&c->w, 4);
    size_t pos = w_scalar(&c->w, v->len, 4);
    for (uint32_t i = 0; i < v->len; i++) w_scalar(&c->w, 0, 4);
    for (uint32_t i = 0; i < v->len && !c->failed && !c->w.oom; i++) {
        size_t target = fn(c, v, i, ctx);
        if (c->failed) return 0;
        w_patch(&c->w, pos + 4 + 4 * (size_t)i, target);
    }
    return pos;
}

static size_t str_elem(cp *c, const eb_fb_vec *v, uint32_t i, void *ctx) {
    (void)ctx;
    const char *s;
    uint32_t n;
    CK(eb_fb_vec_string(&c->r, v, i, &s, &n));
    return w_str(&c->w, s, n);
}

static size_t tensor_elem(cp *c, const eb_fb_vec *v, uint32_t i, void *ctx) {
    eb_fb_table tt;
    CK(eb_fb_vec_table(&c->r, v, i, &tt));
    return copy_tensor(c, &tt, (int)i, (const uint64_t *)ctx);
}

typedef struct attr_ctx {
    int is_trained;
    int64_t num_output;
} attr_ctx;

static size_t attr_elem(cp *c, const eb_fb_vec *v, uint32_t i, void *ctx) {
    const attr_ctx *ac = (const attr_ctx *)ctx;
    eb_fb_table at;
    const char *key;
    int present;
    CK(eb_fb_vec_table(&c->r, v, i, &at));
    CK(eb_fb_string(&c->r, &at, A_KEY, &key, NULL, &present));
    int replace = ac->is_trained && present && strcmp(key, "num_output") == 0;
    return copy_attr(c, &at, replace, ac->num_output);
}

static size_t copy_op(cp *c, const eb_fb_table *ot, int oi) {
    const eb_rewrite *rw = c->rw;
    int16_t type;
    CK(eb_fb_i16(&c->r, ot, O_TYPE, 0, &type));
    int trained = oi == rw->op_index;
    int mults = trained && rw->write_mults ? 1 : has_field(c, ot, O_PARAM_MULTS);
    fld f[O_NFIELDS] = {off_field(1), scalar_field((uint16_t)type, 2),
                        off_field(has_field(c, ot, O_INPUTS)), off_field(has_field(c, ot, O_OUTPUTS)),
                        off_field(has_field(c, ot, O_WEIGHTS)), off_field(has_field(c, ot, O_ATTRS)),
                        off_field(has_field(c, ot, O_FUSED)), off_field(mults)};
    tbl t;
    w_table(&c->w, f, O_NFIELDS, &t);
    patch_opt(c, &t, O_NAME, copy_str(c, ot, O_NAME));
    for (int id = O_INPUTS; id <= O_WEIGHTS; id++)
        if (f[id].present) patch_opt(c, &t, id, copy_vec(c, ot, id, 4, 4));
    eb_fb_vec v;
    int present;
    if (f[O_ATTRS].present) {
        CK(eb_fb_vector(&c->r, ot, O_ATTRS, 4, 4, &v, &present));
        attr_ctx ac = {trained, rw->num_output};
        patch_opt(c, &t, O_ATTRS, copy_offvec(c, &v, attr_elem, &ac));
    }
    if (f[O_FUSED].present) {
        CK(eb_fb_vector(&c->r, ot, O_FUSED, 4, 4, &v, &present));
        patch_opt(c, &t, O_FUSED, copy_offvec(c, &v, str_elem, NULL));
    }
    if (mults) {
        if (trained && rw->write_mults) {
            uint8_t b[16];
            for (int k = 0; k < rw->n_mults; k++) {
                uint32_t u;
                memcpy(&u, &rw->mults[k], 4);
                put_le(b + 4 * k, u, 4);
            }
            patch_opt(c, &t, O_PARAM_MULTS, w_vec(&c->w, b, (uint32_t)rw->n_mults, 4, 4));
        } else {
            patch_opt(c, &t, O_PARAM_MULTS, copy_vec(c, ot, O_PARAM_MULTS, 4, 4));
        }
    }
    return t.pos;
}

static size_t op_elem(cp *c, const eb_fb_vec *v, uint32_t i, void *ctx) {
    (void)ctx;
    eb_fb_table ot;
    CK(eb_fb_vec_table(&c->r, v, i, &ot));
    return copy_op(c, &ot, (int)i);
}

static size_t copy_preprocessing(cp *c, const eb_fb_table *pp) {
    int32_t mean_file;
    double scale;
    uint8_t gray;
    uint64_t sbits;
    CK(eb_fb_i32(&c->r, pp, P_MEAN_FILE, -1, &mean_file));
    CK(eb_fb_f64(&c->r, pp, P_SCALE, 1.0, &scale));
    CK(eb_fb_u8(&c->r, pp, P_GRAYSCALE, 0, &gray));
    memcpy(&sbits, &scale, 8);
    fld f[P_NFIELDS] = {off_field(has_field(c, pp, P_MEAN)), scalar_field((uint32_t)mean_file, 4),
                        scalar_field(sbits, 8), off_field(has_field(c, pp, P_CHANNEL_ORDER)),
                        off_field(has_field(c, pp, P_INPUT_SIZE)), scalar_field(gray, 1)};
    tbl t;
    w_table(&c->w, f, P_NFIELDS, &t);
    if (f[P_MEAN].present) patch_opt(c, &t, P_MEAN, copy_vec(c, pp, P_MEAN, 8, 8));
    if (f[P_CHANNEL_ORDER].present) patch_opt(c, &t, P_CHANNEL_ORDER, copy_str(c, pp, P_CHANNEL_ORDER));
    if (f[P_INPUT_SIZE].present) patch_opt(c, &t, P_INPUT_SIZE, copy_vec(c, pp, P_INPUT_SIZE, 4, 4));
    return t.pos;
}

/* metadata.extra with "finetune": {...} added as its last key (a later key wins in JSON
 * readers, so tuning a tuned model records the latest run). */
static size_t write_extra(cp *c, const char *old, size_t n) {
    const char *add = c->rw->extra_finetune_json;
    if (!add) return w_str(&c->w, old, n);
    size_t end = n;
    while (end > 0 && (old[end - 1] == ' ' || old[end - 1] == '\n' || old[end - 1] == '\t' ||
                       old[end - 1] == '\r'))
        end--;
    size_t start = 0;
    while (start < end && (old[start] == ' ' || old[start] == '\n' || old[start] == '\t' ||
                           old[start] == '\r'))
        start++;
    int is_obj = end > start + 1 && old[start] == '{' && old[end - 1] == '}';
    int empty = 1;
    if (is_obj)
        for (size_t k = start + 1; k + 1 < end; k++)
            if (old[k] != ' ' && old[k] != '\n' && old[k] != '\t' && old[k] != '\r') empty = 0;
    size_t addn = strlen(add);
    size_t cap = (is_obj ? end - start : 0) + addn + 32;
    char *s = (char *)malloc(cap);
    if (!s) {
        c->w.oom = 1;
        return 0;
    }
    size_t k = 0;
    if (is_obj && !empty) {
        memcpy(s, old + start, end - start - 1);
        k = end - start - 1;
        memcpy(s + k, ", ", 2);
        k += 2;
    } else {
        s[k++] = '{';
    }
    memcpy(s + k, "\"finetune\": ", 12);
    k += 12;
    memcpy(s + k, add, addn);
    k += addn;
    s[k++] = '}';
    size_t pos = w_str(&c->w, s, k);
    free(s);
    return pos;
}

static size_t copy_metadata(cp *c, const eb_fb_table *md) {
    const eb_rewrite *rw = c->rw;
    fld f[MD_NFIELDS];
    for (int i = 0; i < MD_NFIELDS; i++) f[i] = off_field(has_field(c, md, i));
    if (rw->replace_labels) f[MD_LABELS] = off_field(1);
    if (rw->extra_finetune_json) f[MD_EXTRA] = off_field(1);
    tbl t;
    w_table(&c->w, f, MD_NFIELDS, &t);
    static const int strs[] = {MD_MODEL_NAME, MD_SOURCE_PROTOTXT, MD_SOURCE_CAFFEMODEL,
                               MD_SOURCE_SHA1, MD_CONVERTER_VERSION, MD_CONVERTER_OPTIONS};
    for (size_t k = 0; k < sizeof strs / sizeof strs[0]; k++)
        if (f[strs[k]].present) patch_opt(c, &t, strs[k], copy_str(c, md, strs[k]));
    if (f[MD_PREPROCESSING].present) {
        eb_fb_table pp;
        int present;
        CK(eb_fb_table_field(&c->r, md, MD_PREPROCESSING, &pp, &present));
        if (present) patch_opt(c, &t, MD_PREPROCESSING, copy_preprocessing(c, &pp));
    }
    if (rw->replace_labels) {
        w_pad(&c->w, 4);
        size_t pos = w_scalar(&c->w, (uint64_t)rw->n_labels, 4);
        for (int i = 0; i < rw->n_labels; i++) w_scalar(&c->w, 0, 4);
        for (int i = 0; i < rw->n_labels; i++) {
            const char *s = rw->labels[i] ? rw->labels[i] : "";
            w_patch(&c->w, pos + 4 + 4 * (size_t)i, w_str(&c->w, s, strlen(s)));
        }
        patch_opt(c, &t, MD_LABELS, pos);
    } else if (f[MD_LABELS].present) {
        eb_fb_vec v;
        int present;
        CK(eb_fb_vector(&c->r, md, MD_LABELS, 4, 4, &v, &present));
        patch_opt(c, &t, MD_LABELS, copy_offvec(c, &v, str_elem, NULL));
    }
    if (f[MD_EXTRA].present) {
        const char *s = NULL;
        uint32_t n = 0;
        int present;
        CK(eb_fb_string(&c->r, md, MD_EXTRA, &s, &n, &present));
        patch_opt(c, &t, MD_EXTRA, write_extra(c, present ? s : "", present ? n : 0));
    }
    return t.pos;
}

eb_status eb_bundle_rewrite(const uint8_t *data, size_t size, const eb_rewrite *rw,
                            uint8_t **out, size_t *out_size) {
    *out = NULL;
    *out_size = 0;
    cp cc;
    cp *c = &cc;
    memset(c, 0, sizeof *c);
    c->rw = rw;
    eb_fb_table root;
    if (eb_fb_init(&c->r, data, size, "EBRW", &root))
        return eb_set_error(EB_ERR_INVALID_BUNDLE, "invalid bundle: %s", c->r.msg);

    uint32_t version;
    uint64_t ws_off, ws_size;
    eb_fb_vec bufs;
    int present;
    if (eb_fb_u32(&c->r, &root, M_FORMAT_VERSION, 0, &version) ||
        eb_fb_u64(&c->r, &root, M_WEIGHT_SEGMENT_OFFSET, 0, &ws_off) ||
        eb_fb_u64(&c->r, &root, M_WEIGHT_SEGMENT_SIZE, 0, &ws_size) ||
        eb_fb_vector(&c->r, &root, M_BUFFERS, 16, 8, &bufs, &present))
        return eb_set_error(EB_ERR_INVALID_BUNDLE, "invalid bundle: %s", c->r.msg);
    if (ws_off > size || ws_size > size - ws_off)
        return eb_set_error(EB_ERR_INVALID_BUNDLE, "invalid bundle: weight segment out of range");

    /* The new weight segment: every buffer in order, 64-aligned; replaced tensors' buffers get
     * their new bytes. Which buffer a replaced tensor uses: */
    eb_fb_vec tv;
    if (eb_fb_vector(&c->r, &root, M_TENSORS, 4, 4, &tv, &present))
        return eb_set_error(EB_ERR_INVALID_BUNDLE, "invalid bundle: %s", c->r.msg);
    uint32_t nb = bufs.len;
    const void **src = (const void **)calloc(nb ? nb : 1, sizeof *src);
    uint64_t *bsize = (uint64_t *)calloc(nb ? nb : 1, sizeof *bsize);
    uint64_t *boff = (uint64_t *)calloc(nb ? nb : 1, sizeof *boff);
    eb_status st = EB_OK;
    if (!src || !bsize || !boff) {
        st = eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    for (uint32_t i = 0; i < nb; i++) {
        uint64_t off = eb_fb_vec_u64(&c->r, &bufs, i, 0), sz = eb_fb_vec_u64(&c->r, &bufs, i, 8);
        if (off > ws_size || sz > ws_size - off) {
            st = eb_set_error(EB_ERR_INVALID_BUNDLE, "invalid bundle: buffer %u out of range", i);
            goto done;
        }
        src[i] = data + ws_off + off;
        bsize[i] = sz;
    }
    for (int k = 0; k < rw->n_replace; k++) {
        eb_fb_table tt;
        int32_t buffer;
        if ((uint32_t)rw->replace_tensor[k] >= tv.len ||
            eb_fb_vec_table(&c->r, &tv, (uint32_t)rw->replace_tensor[k], &tt) ||
            eb_fb_i32(&c->r, &tt, T_BUFFER, -1, &buffer) || buffer < 0 || (uint32_t)buffer >= nb) {
            st = eb_set_error(EB_ERR_RUNTIME, "cannot locate the buffer of a trained tensor");
            goto done;
        }
        /* the buffer must belong to this tensor alone */
        for (uint32_t j = 0; j < tv.len; j++) {
            eb_fb_table t2;
            int32_t b2;
            if ((int)j == rw->replace_tensor[k]) continue;
            if (eb_fb_vec_table(&c->r, &tv, j, &t2) || eb_fb_i32(&c->r, &t2, T_BUFFER, -1, &b2)) {
                st = eb_set_error(EB_ERR_INVALID_BUNDLE, "invalid bundle: %s", c->r.msg);
                goto done;
            }
            if (b2 == buffer) {
                st = eb_set_error(EB_ERR_UNSUPPORTED,
                                  "the trained layer's weights share buffer %d with another "
                                  "tensor: cannot replace them", (int)buffer);
                goto done;
            }
        }
        src[buffer] = rw->replace_data[k];
        bsize[buffer] = rw->replace_bytes[k];
    }
    uint64_t seg = 0;
    for (uint32_t i = 0; i < nb; i++) {
        boff[i] = seg;
        seg = (seg + bsize[i] + EB_ALIGN - 1) / EB_ALIGN * EB_ALIGN;
    }

    /* header: root offset, identifier */
    w_scalar(&c->w, 0, 4);
    w_bytes(&c->w, "EBRW", 4);
    fld f[M_NFIELDS];
    for (int i = 0; i < M_NFIELDS; i++) f[i] = off_field(has_field(c, &root, i));
    f[M_FORMAT_VERSION] = scalar_field(version, 4);
    f[M_BUFFERS] = off_field(1);
    f[M_ARENA_SIZE] = scalar_field(rw->new_arena_size, 8);
    f[M_WEIGHT_SEGMENT_OFFSET] = scalar_field(0, 8);
    f[M_WEIGHT_SEGMENT_SIZE] = scalar_field(seg, 8);
    tbl t;
    w_table(&c->w, f, M_NFIELDS, &t);
    w_patch(&c->w, 0, t.pos);
    eb_fb_vec v;
    if (f[M_TENSORS].present) {
        if (eb_fb_vector(&c->r, &root, M_TENSORS, 4, 4, &v, &present)) c->failed = 1;
        else patch_opt(c, &t, M_TENSORS, copy_offvec(c, &v, tensor_elem, NULL));
    }
    if (!c->failed && f[M_OPS].present) {
        if (eb_fb_vector(&c->r, &root, M_OPS, 4, 4, &v, &present)) c->failed = 1;
        else patch_opt(c, &t, M_OPS, copy_offvec(c, &v, op_elem, NULL));
    }
    if (!c->failed && f[M_INPUTS].present) patch_opt(c, &t, M_INPUTS, copy_vec(c, &root, M_INPUTS, 4, 4));
    if (!c->failed && f[M_OUTPUTS].present)
        patch_opt(c, &t, M_OUTPUTS, copy_vec(c, &root, M_OUTPUTS, 4, 4));
    if (!c->failed) {
        uint8_t *b = (uint8_t *)malloc(16 * (size_t)(nb ? nb : 1));
        if (!b) {
            c->w.oom = 1;
        } else {
            for (uint32_t i = 0; i < nb; i++) {
                put_le(b + 16 * i, boff[i], 8);
                put_le(b + 16 * i + 8, bsize[i], 8);
            }
            patch_opt(c, &t, M_BUFFERS, w_vec(&c->w, b, nb, 16, 8));
            free(b);
        }
    }
    if (!c->failed && f[M_METADATA].present) {
        eb_fb_table md;
        if (eb_fb_table_field(&c->r, &root, M_METADATA, &md, &present)) c->failed = 1;
        else if (present) patch_opt(c, &t, M_METADATA, copy_metadata(c, &md));
    }
    if (c->failed) {
        st = eb_set_error(EB_ERR_INVALID_BUNDLE, "invalid bundle: %s", c->r.msg);
        goto done;
    }
    /* the weight segment */
    size_t fb_end = w_pad(&c->w, EB_ALIGN);
    w_set_u64(&c->w, t.at[M_WEIGHT_SEGMENT_OFFSET], fb_end);
    if (seg > (uint64_t)SIZE_MAX - fb_end || w_reserve(&c->w, (size_t)seg)) {
        c->w.oom = 1;
    } else {
        memset(c->w.buf + fb_end, 0, (size_t)seg);
        for (uint32_t i = 0; i < nb; i++)
            if (bsize[i]) memcpy(c->w.buf + fb_end + boff[i], src[i], (size_t)bsize[i]);
        c->w.len = fb_end + (size_t)seg;
    }
    if (c->w.oom) {
        st = eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory writing the bundle");
        goto done;
    }
    *out = c->w.buf;
    *out_size = c->w.len;
    c->w.buf = NULL;
done:
    free(c->w.buf);
    free(src);
    free(bsize);
    free(boff);
    return st;
}

int eb_bundle_op_param_mults(const uint8_t *data, size_t size, int op_index, float *out,
                             int max) {
    eb_fb r;
    eb_fb_table root, ot;
    eb_fb_vec ops, v;
    int present;
    if (eb_fb_init(&r, data, size, "EBRW", &root)) return 0;
    if (eb_fb_vector(&r, &root, M_OPS, 4, 4, &ops, &present)) return 0;
    if (op_index < 0 || (uint32_t)op_index >= ops.len) return 0;
    if (eb_fb_vec_table(&r, &ops, (uint32_t)op_index, &ot)) return 0;
    if (eb_fb_vector(&r, &ot, O_PARAM_MULTS, 4, 4, &v, &present)) return 0;
    int n = (int)(v.len < (uint32_t)max ? v.len : (uint32_t)max);
    for (int i = 0; i < n; i++) out[i] = eb_fb_le_f32(r.buf + v.data + 4 * (size_t)i);
    return n;
}

int eb_bundle_tensor_dtype(const uint8_t *data, size_t size, int ti) {
    eb_fb r;
    eb_fb_table root, tt;
    eb_fb_vec tv;
    int present;
    int8_t dt;
    if (eb_fb_init(&r, data, size, "EBRW", &root)) return -1;
    if (eb_fb_vector(&r, &root, M_TENSORS, 4, 4, &tv, &present) || !present) return -1;
    if (ti < 0 || (uint32_t)ti >= tv.len) return -1;
    if (eb_fb_vec_table(&r, &tv, (uint32_t)ti, &tt)) return -1;
    if (eb_fb_i8(&r, &tt, T_DTYPE, 0, &dt)) return -1;
    return dt;
}
