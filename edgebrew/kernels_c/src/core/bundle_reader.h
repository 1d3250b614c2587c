/* A small, bounds-checked reader for the flatbuffers binary format (enough for bundle.fbs).
 *
 * Nothing here trusts the buffer: every offset, length and vtable entry is checked against the
 * buffer (and, for scalars and offsets, against natural alignment relative to the buffer start)
 * before it is followed, and every load goes through memcpy-free little-endian byte assembly,
 * so the buffer itself may have any alignment. Offsets are size_t positions from the buffer
 * start; arithmetic is done in uint64_t after range checks, so it cannot wrap.
 *
 * The reader is schema-driven (no generic recursion): callers ask for a field of a known type,
 * so nesting depth is bounded by the schema. To bound the work a hostile buffer can cause by
 * pointing many offsets at the same large object, every table visit and vector element counts
 * against a budget proportional to the buffer size (eb_fb_charge).
 *
 * All functions return 0 on success and -1 on failure, with a message in r->msg.
 */
#ifndef EB_BUNDLE_READER_H
#define EB_BUNDLE_READER_H

#include <stddef.h>
#include <stdint.h>

typedef struct eb_fb {
    const uint8_t *buf;
    size_t size;
    uint64_t budget; /* remaining work units (tables + vector elements) */
    char msg[256];
} eb_fb;

typedef struct eb_fb_table {
    size_t pos;       /* table start (its soffset to the vtable) */
    size_t vt;        /* vtable start */
    uint16_t vt_size; /* bytes of the vtable, including its two header fields */
    uint16_t tsize;   /* inline size of the table, including the soffset */
} eb_fb_table;

typedef struct eb_fb_vec {
    size_t data;      /* position of element 0 */
    uint32_t len;     /* number of elements */
    uint32_t elem;    /* element size in bytes */
} eb_fb_vec;

/* Little-endian loads from a position the caller has already bounds-checked. */
uint8_t eb_fb_ld_u8(const eb_fb *r, size_t pos);
uint16_t eb_fb_ld_u16(const eb_fb *r, size_t pos);
uint32_t eb_fb_ld_u32(const eb_fb *r, size_t pos);
uint64_t eb_fb_ld_u64(const eb_fb *r, size_t pos);
/* Same, from raw little-endian bytes (for data pointers handed out, e.g. attribute ints). */
int64_t eb_fb_le_i64(const uint8_t *p);
double eb_fb_le_f64(const uint8_t *p);
float eb_fb_le_f32(const uint8_t *p);

/* Checks the header (size, 4-byte identifier at offset 4, root offset) and the root table. */
int eb_fb_init(eb_fb *r, const void *buf, size_t size, const char *identifier, eb_fb_table *root);

/* Verifies the table at `pos` (alignment, soffset, vtable bounds and entries). */
int eb_fb_table_at(eb_fb *r, size_t pos, eb_fb_table *t);

/* Charges `units` of work; fails when the budget is exhausted. */
int eb_fb_charge(eb_fb *r, uint64_t units);

/* Scalar fields: *out = the stored value, or dflt when the field is absent. */
int eb_fb_u8(eb_fb *r, const eb_fb_table *t, int id, uint8_t dflt, uint8_t *out);
int eb_fb_i8(eb_fb *r, const eb_fb_table *t, int id, int8_t dflt, int8_t *out);
int eb_fb_i16(eb_fb *r, const eb_fb_table *t, int id, int16_t dflt, int16_t *out);
int eb_fb_u32(eb_fb *r, const eb_fb_table *t, int id, uint32_t dflt, uint32_t *out);
int eb_fb_i32(eb_fb *r, const eb_fb_table *t, int id, int32_t dflt, int32_t *out);
int eb_fb_u64(eb_fb *r, const eb_fb_table *t, int id, uint64_t dflt, uint64_t *out);
int eb_fb_i64(eb_fb *r, const eb_fb_table *t, int id, int64_t dflt, int64_t *out);
int eb_fb_f32(eb_fb *r, const eb_fb_table *t, int id, float dflt, float *out);
int eb_fb_f64(eb_fb *r, const eb_fb_table *t, int id, double dflt, double *out);

/* Offset fields. *present = 0 (and the output zeroed) when the field is absent. */
int eb_fb_table_field(eb_fb *r, const eb_fb_table *t, int id, eb_fb_table *out, int *present);
/* A string: NUL-terminated within the buffer. *out points into the buffer. */
int eb_fb_string(eb_fb *r, const eb_fb_table *t, int id, const char **out, uint32_t *len,
                 int *present);
/* A vector of scalars or structs of `elem` bytes aligned to `align` (1, 2, 4 or 8). Absent gives
 * an empty vector. */
int eb_fb_vector(eb_fb *r, const eb_fb_table *t, int id, uint32_t elem, uint32_t align,
                 eb_fb_vec *out, int *present);

/* Elements of a verified vector (index must be < len; checked, returns -1 otherwise). */
int eb_fb_vec_table(eb_fb *r, const eb_fb_vec *v, uint32_t i, eb_fb_table *out);
int eb_fb_vec_string(eb_fb *r, const eb_fb_vec *v, uint32_t i, const char **out, uint32_t *len);
/* Scalars in a verified vector (no failure: the vector's bounds were checked). */
int32_t eb_fb_vec_i32(const eb_fb *r, const eb_fb_vec *v, uint32_t i);
int64_t eb_fb_vec_i64(const eb_fb *r, const eb_fb_vec *v, uint32_t i);
uint64_t eb_fb_vec_u64(const eb_fb *r, const eb_fb_vec *v, uint32_t i, uint32_t byte_offset);

#endif /* EB_BUNDLE_READER_H */
