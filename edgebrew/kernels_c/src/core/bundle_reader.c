/* Bounds-checked flatbuffers reader; see bundle_reader.h. */
#include "bundle_reader.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(eb_fb *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int fail(eb_fb *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    return -1;
}

/* [pos, pos + n) lies inside the buffer. */
static int in_bounds(const eb_fb *r, uint64_t pos, uint64_t n) {
    return pos <= (uint64_t)r->size && n <= (uint64_t)r->size - pos;
}

uint8_t eb_fb_ld_u8(const eb_fb *r, size_t pos) { return r->buf[pos]; }

uint16_t eb_fb_ld_u16(const eb_fb *r, size_t pos) {
    const uint8_t *p = r->buf + pos;
    return (uint16_t)(p[0] | (p[1] << 8));
}

uint32_t eb_fb_ld_u32(const eb_fb *r, size_t pos) {
    const uint8_t *p = r->buf + pos;
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint64_t le_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

uint64_t eb_fb_ld_u64(const eb_fb *r, size_t pos) { return le_u64(r->buf + pos); }

int64_t eb_fb_le_i64(const uint8_t *p) {
    uint64_t u = le_u64(p);
    int64_t v;
    memcpy(&v, &u, sizeof v); /* two's complement reinterpretation without UB */
    return v;
}

double eb_fb_le_f64(const uint8_t *p) {
    uint64_t u = le_u64(p);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

float eb_fb_le_f32(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
                 ((uint32_t)p[3] << 24);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int eb_fb_charge(eb_fb *r, uint64_t units) {
    if (units > r->budget) {
        r->budget = 0;
        return fail(r, "too many objects to verify (offsets point at shared data too often)");
    }
    r->budget -= units;
    return 0;
}

int eb_fb_table_at(eb_fb *r, size_t pos, eb_fb_table *t) {
    memset(t, 0, sizeof *t);
    if (eb_fb_charge(r, 1)) return -1;
    if (pos % 4 != 0) return fail(r, "table at offset %zu is not 4-byte aligned", pos);
    if (!in_bounds(r, pos, 4)) return fail(r, "table at offset %zu is past the end of the buffer", pos);
    uint32_t so_u = eb_fb_ld_u32(r, pos);
    int32_t so;
    memcpy(&so, &so_u, sizeof so);
    /* vtable = table - soffset, computed in int64 (no overflow: |so| < 2^31, pos < 2^63) */
    int64_t vt = (int64_t)pos - (int64_t)so;
    if (vt < 0 || !in_bounds(r, (uint64_t)vt, 4))
        return fail(r, "table at offset %zu: vtable offset %d is out of the buffer", pos, (int)so);
    if (vt % 2 != 0)
        return fail(r, "table at offset %zu: vtable at %lld is not 2-byte aligned", pos,
                    (long long)vt);
    uint16_t vt_size = eb_fb_ld_u16(r, (size_t)vt);
    uint16_t tsize = eb_fb_ld_u16(r, (size_t)vt + 2);
    if (vt_size < 4 || vt_size % 2 != 0)
        return fail(r, "table at offset %zu: bad vtable size %u", pos, (unsigned)vt_size);
    if (!in_bounds(r, (uint64_t)vt, vt_size))
        return fail(r, "table at offset %zu: vtable (%u bytes) extends past the end of the buffer",
                    pos, (unsigned)vt_size);
    if (tsize < 4)
        return fail(r, "table at offset %zu: bad table size %u", pos, (unsigned)tsize);
    if (!in_bounds(r, pos, tsize))
        return fail(r, "table at offset %zu (%u bytes) extends past the end of the buffer", pos,
                    (unsigned)tsize);
    t->pos = pos;
    t->vt = (size_t)vt;
    t->vt_size = vt_size;
    t->tsize = tsize;
    return 0;
}

int eb_fb_init(eb_fb *r, const void *buf, size_t size, const char *identifier, eb_fb_table *root) {
    r->buf = (const uint8_t *)buf;
    r->size = size;
    r->msg[0] = '\0';
    /* Each table visit and vector element costs one unit. An honest buffer needs at most about
     * one unit per byte (every element and table occupies at least one distinct byte). */
    r->budget = (uint64_t)size * 4u + (1u << 20);
    if (buf == NULL || size < 8) return fail(r, "buffer too small (%zu bytes) for a flatbuffer", size);
    if (identifier && memcmp(r->buf + 4, identifier, 4) != 0) {
        char got[5];
        for (int i = 0; i < 4; i++) {
            uint8_t c = r->buf[4 + i];
            got[i] = (c >= 32 && c < 127) ? (char)c : '?';
        }
        got[4] = '\0';
        return fail(r, "file identifier is '%s', expected '%s' (not an edgebrew bundle)", got,
                    identifier);
    }
    uint32_t root_off = eb_fb_ld_u32(r, 0);
    if (!in_bounds(r, root_off, 4))
        return fail(r, "root table offset %u is past the end of the buffer (%zu bytes)",
                    (unsigned)root_off, size);
    if (eb_fb_table_at(r, root_off, root)) return -1;
    return 0;
}

/* Position of field `id` of size n bytes (and alignment n) in the table, or 0 when absent. */
static int field_pos(eb_fb *r, const eb_fb_table *t, int id, uint32_t n, size_t *pos) {
    *pos = 0;
    if (id < 0) return fail(r, "bad field id %d", id);
    uint64_t entry = 4 + 2 * (uint64_t)id;
    if (entry + 2 > t->vt_size) return 0; /* field not in this (older) vtable: absent */
    uint16_t off = eb_fb_ld_u16(r, t->vt + (size_t)entry);
    if (off == 0) return 0;
    if (off < 4 || (uint64_t)off + n > t->tsize)
        return fail(r, "table at offset %zu: field %d at %u lies outside the table (%u bytes)",
                    t->pos, id, (unsigned)off, (unsigned)t->tsize);
    size_t p = t->pos + off; /* in bounds: pos + tsize <= size was checked */
    if (n > 1 && p % n != 0)
        return fail(r, "table at offset %zu: field %d at %zu is misaligned", t->pos, id, p);
    *pos = p;
    return 0;
}

#define SCALAR_GETTER(NAME, T, N, LOAD)                                                        \
    int NAME(eb_fb *r, const eb_fb_table *t, int id, T dflt, T *out) {                          \
        size_t p;                                                                              \
        *out = dflt;                                                                           \
        if (field_pos(r, t, id, N, &p)) return -1;                                             \
        if (p) {                                                                               \
            LOAD;                                                                              \
        }                                                                                      \
        return 0;                                                                              \
    }

SCALAR_GETTER(eb_fb_u8, uint8_t, 1, *out = eb_fb_ld_u8(r, p))
SCALAR_GETTER(eb_fb_i8, int8_t, 1, { uint8_t u = eb_fb_ld_u8(r, p); memcpy(out, &u, 1); })
SCALAR_GETTER(eb_fb_i16, int16_t, 2, { uint16_t u = eb_fb_ld_u16(r, p); memcpy(out, &u, 2); })
SCALAR_GETTER(eb_fb_u32, uint32_t, 4, *out = eb_fb_ld_u32(r, p))
SCALAR_GETTER(eb_fb_i32, int32_t, 4, { uint32_t u = eb_fb_ld_u32(r, p); memcpy(out, &u, 4); })
SCALAR_GETTER(eb_fb_u64, uint64_t, 8, *out = eb_fb_ld_u64(r, p))
SCALAR_GETTER(eb_fb_i64, int64_t, 8, *out = eb_fb_le_i64(r->buf + p))
SCALAR_GETTER(eb_fb_f32, float, 4, *out = eb_fb_le_f32(r->buf + p))
SCALAR_GETTER(eb_fb_f64, double, 8, *out = eb_fb_le_f64(r->buf + p))

/* Follows the uoffset stored at `at` (already bounds-checked, 4 bytes). */
static int follow(eb_fb *r, size_t at, size_t *target) {
    uint32_t off = eb_fb_ld_u32(r, at);
    uint64_t tgt = (uint64_t)at + off;
    if (off == 0 || !in_bounds(r, tgt, 4))
        return fail(r, "offset %u at %zu points outside the buffer", (unsigned)off, at);
    *target = (size_t)tgt;
    return 0;
}

static int offset_field(eb_fb *r, const eb_fb_table *t, int id, size_t *target, int *present) {
    size_t p;
    *present = 0;
    *target = 0;
    if (field_pos(r, t, id, 4, &p)) return -1;
    if (!p) return 0;
    if (follow(r, p, target)) return -1;
    *present = 1;
    return 0;
}

int eb_fb_table_field(eb_fb *r, const eb_fb_table *t, int id, eb_fb_table *out, int *present) {
    size_t tgt = 0;
    memset(out, 0, sizeof *out);
    if (offset_field(r, t, id, &tgt, present)) return -1;
    if (!*present) return 0;
    return eb_fb_table_at(r, tgt, out);
}

static int string_at(eb_fb *r, size_t pos, const char **out, uint32_t *len) {
    if (pos % 4 != 0) return fail(r, "string at offset %zu is not 4-byte aligned", pos);
    if (!in_bounds(r, pos, 4)) return fail(r, "string at offset %zu is past the end", pos);
    uint32_t n = eb_fb_ld_u32(r, pos);
    /* bytes [pos+4, pos+4+n) and the terminator at pos+4+n */
    if (!in_bounds(r, (uint64_t)pos + 4, (uint64_t)n + 1))
        return fail(r, "string at offset %zu (length %u) extends past the end of the buffer", pos,
                    (unsigned)n);
    if (r->buf[pos + 4 + n] != 0)
        return fail(r, "string at offset %zu (length %u) is not NUL-terminated", pos, (unsigned)n);
    if (out) *out = (const char *)(r->buf + pos + 4);
    if (len) *len = n;
    return 0;
}

int eb_fb_string(eb_fb *r, const eb_fb_table *t, int id, const char **out, uint32_t *len,
                 int *present) {
    size_t tgt = 0;
    if (out) *out = NULL;
    if (len) *len = 0;
    if (offset_field(r, t, id, &tgt, present)) return -1;
    if (!*present) return 0;
    return string_at(r, tgt, out, len);
}

static int vector_at(eb_fb *r, size_t pos, uint32_t elem, uint32_t align, eb_fb_vec *out) {
    if (pos % 4 != 0) return fail(r, "vector at offset %zu is not 4-byte aligned", pos);
    if (!in_bounds(r, pos, 4)) return fail(r, "vector at offset %zu is past the end", pos);
    uint32_t n = eb_fb_ld_u32(r, pos);
    size_t data = pos + 4;
    if (align > 1 && data % align != 0)
        return fail(r, "vector at offset %zu: elements are not %u-byte aligned", pos,
                    (unsigned)align);
    /* n * elem fits in 64 bits (both < 2^32); compare against the bytes left */
    if (!in_bounds(r, data, (uint64_t)n * elem))
        return fail(r, "vector at offset %zu: length %u (x %u bytes) extends past the end of "
                       "the buffer", pos, (unsigned)n, (unsigned)elem);
    if (eb_fb_charge(r, n)) return -1;
    out->data = data;
    out->len = n;
    out->elem = elem;
    return 0;
}

int eb_fb_vector(eb_fb *r, const eb_fb_table *t, int id, uint32_t elem, uint32_t align,
                 eb_fb_vec *out, int *present) {
    size_t tgt = 0;
    memset(out, 0, sizeof *out);
    out->elem = elem;
    if (elem == 0) return fail(r, "bad vector element size");
    if (offset_field(r, t, id, &tgt, present)) return -1;
    if (!*present) return 0;
    return vector_at(r, tgt, elem, align, out);
}

int eb_fb_vec_table(eb_fb *r, const eb_fb_vec *v, uint32_t i, eb_fb_table *out) {
    size_t tgt = 0;
    memset(out, 0, sizeof *out);
    if (i >= v->len || v->elem != 4) return fail(r, "vector index %u out of range", (unsigned)i);
    if (follow(r, v->data + (size_t)i * 4, &tgt)) return -1;
    return eb_fb_table_at(r, tgt, out);
}

int eb_fb_vec_string(eb_fb *r, const eb_fb_vec *v, uint32_t i, const char **out, uint32_t *len) {
    size_t tgt = 0;
    if (out) *out = NULL;
    if (len) *len = 0;
    if (i >= v->len || v->elem != 4) return fail(r, "vector index %u out of range", (unsigned)i);
    if (follow(r, v->data + (size_t)i * 4, &tgt)) return -1;
    return string_at(r, tgt, out, len);
}

int32_t eb_fb_vec_i32(const eb_fb *r, const eb_fb_vec *v, uint32_t i) {
    if (i >= v->len || v->elem < 4) return 0;
    uint32_t u = eb_fb_ld_u32(r, v->data + (size_t)i * v->elem);
    int32_t s;
    memcpy(&s, &u, sizeof s);
    return s;
}

int64_t eb_fb_vec_i64(const eb_fb *r, const eb_fb_vec *v, uint32_t i) {
    if (i >= v->len || v->elem < 8) return 0;
    return eb_fb_le_i64(r->buf + v->data + (size_t)i * v->elem);
}

uint64_t eb_fb_vec_u64(const eb_fb *r, const eb_fb_vec *v, uint32_t i, uint32_t byte_offset) {
    if (i >= v->len || (uint64_t)byte_offset + 8 > v->elem) return 0;
    return eb_fb_ld_u64(r, v->data + (size_t)i * v->elem + byte_offset);
}
