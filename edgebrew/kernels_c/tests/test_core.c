/* Built-in checks of the core: hand-built bundles (valid, and corrupted in specific ways),
 * attribute accessors, the thread pool, and an in-process mutation loop.
 *
 * The bundles are built by a tiny forward flatbuffer writer (children after their parents, so
 * every uoffset points forward as the format requires), independent of the Python writer. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "core/diag.h"
#include "core/threadpool.h"
#include "edgebrew.h"
#include "test_common.h"

/* ---- a forward flatbuffer writer --------------------------------------------------------- */

typedef struct fbb {
    uint8_t *b;
    size_t n;
} fbb;

static void w16(uint8_t *b, size_t p, uint16_t v) {
    b[p] = (uint8_t)v;
    b[p + 1] = (uint8_t)(v >> 8);
}
static void w32(uint8_t *b, size_t p, uint32_t v) {
    for (int i = 0; i < 4; i++) b[p + (size_t)i] = (uint8_t)(v >> (8 * i));
}
static void w64(uint8_t *b, size_t p, uint64_t v) {
    for (int i = 0; i < 8; i++) b[p + (size_t)i] = (uint8_t)(v >> (8 * i));
}
static uint32_t r32(const uint8_t *b, size_t p) {
    return (uint32_t)b[p] | ((uint32_t)b[p + 1] << 8) | ((uint32_t)b[p + 2] << 16) |
           ((uint32_t)b[p + 3] << 24);
}

static size_t put(fbb *f, size_t size, size_t align) {
    while (f->n % align) f->b[f->n++] = 0;
    size_t p = f->n;
    memset(f->b + p, 0, size);
    f->n += size;
    return p;
}

/* A table with nfields fields of the given sizes (0 = absent); field positions into fpos. */
static size_t table(fbb *f, int nfields, const uint8_t *sizes, size_t *fpos, size_t *vt_out) {
    size_t vt = put(f, 4 + 2 * (size_t)nfields, 2);
    uint16_t off = 4, offs[16] = {0};
    for (int i = 0; i < nfields; i++) {
        if (!sizes[i]) continue;
        while (off % sizes[i]) off++;
        offs[i] = off;
        off = (uint16_t)(off + sizes[i]);
    }
    size_t t = put(f, off, 8);
    w16(f->b, vt, (uint16_t)(4 + 2 * nfields));
    w16(f->b, vt + 2, off);
    for (int i = 0; i < nfields; i++) {
        w16(f->b, vt + 4 + 2 * (size_t)i, offs[i]);
        fpos[i] = offs[i] ? t + offs[i] : 0;
    }
    w32(f->b, t, (uint32_t)(t - vt)); /* soffset: vtable = table - soffset */
    if (vt_out) *vt_out = vt;
    return t;
}

static void link_to(fbb *f, size_t at, size_t target) { w32(f->b, at, (uint32_t)(target - at)); }

static size_t string(fbb *f, const char *s) {
    size_t len = strlen(s);
    size_t p = put(f, 4 + len + 1, 4);
    w32(f->b, p, (uint32_t)len);
    memcpy(f->b + p + 4, s, len + 1);
    return p;
}

static size_t vector(fbb *f, uint32_t n, size_t elem, size_t align) {
    while (f->n % 4 || (f->n + 4) % align) f->b[f->n++] = 0;
    size_t p = put(f, 4 + (size_t)n * elem, 4);
    w32(f->b, p, n);
    return p;
}

size_t eb_test_build_identity(uint8_t *buf, eb_test_layout *L) {
    eb_test_layout dummy;
    if (!L) L = &dummy;
    memset(L, 0, sizeof *L);
    memset(buf, 0, 4096);
    fbb f = {buf, 0};
    put(&f, 8, 4);
    memcpy(buf + 4, "EBRW", 4);

    /* Model: format_version, tensors, ops(absent), inputs, outputs, buffers, arena_size,
     * weight_segment_offset, weight_segment_size, metadata */
    static const uint8_t msz[10] = {4, 4, 0, 4, 4, 4, 8, 8, 8, 4};
    size_t mf[10];
    size_t model = table(&f, 10, msz, mf, &L->model_vtable);
    L->model_table = model;
    link_to(&f, 0, model);
    w32(buf, mf[0], 1);
    w64(buf, mf[6], 64);
    L->field_format_version = mf[0];
    L->field_arena_size = mf[6];
    L->field_ws_offset = mf[7];
    L->field_ws_size = mf[8];

    size_t tv = vector(&f, 2, 4, 4);
    link_to(&f, mf[1], tv);
    L->tensors_vec = tv;
    /* Tensor: name, shape, dtype, buffer, arena_offset, quant(absent) */
    static const uint8_t t0sz[6] = {4, 4, 1, 0, 8, 0};
    size_t t0f[6];
    size_t t0 = table(&f, 6, t0sz, t0f, NULL);
    link_to(&f, tv + 4, t0);
    L->tensor0_table = t0;
    L->tensor0_field_arena_offset = t0f[4];
    w64(buf, t0f[4], 0);
    size_t s = string(&f, "x");
    link_to(&f, t0f[0], s);
    L->tensor0_name = s;
    size_t sh = vector(&f, 3, 8, 8);
    link_to(&f, t0f[1], sh);
    L->tensor0_shape = sh;
    w64(buf, sh + 4, 1);
    w64(buf, sh + 12, 2);
    w64(buf, sh + 20, 2);

    static const uint8_t t1sz[6] = {4, 4, 0, 4, 0, 0};
    size_t t1f[6];
    size_t t1 = table(&f, 6, t1sz, t1f, NULL);
    link_to(&f, tv + 8, t1);
    L->tensor1_table = t1;
    L->tensor1_field_buffer = t1f[3];
    w32(buf, t1f[3], 0);
    s = string(&f, "w");
    link_to(&f, t1f[0], s);
    sh = vector(&f, 1, 8, 8);
    link_to(&f, t1f[1], sh);
    w64(buf, sh + 4, 4);

    size_t iv = vector(&f, 1, 4, 4);
    link_to(&f, mf[3], iv);
    w32(buf, iv + 4, 0);
    L->inputs_vec = iv;
    size_t ov = vector(&f, 1, 4, 4);
    link_to(&f, mf[4], ov);
    w32(buf, ov + 4, 0);
    L->outputs_vec = ov;
    size_t bv = vector(&f, 1, 16, 8);
    link_to(&f, mf[5], bv);
    w64(buf, bv + 4, 0);   /* offset */
    w64(buf, bv + 12, 16); /* size */
    L->buffers_vec = bv;

    /* Metadata: model_name, ..., labels */
    static const uint8_t mdsz[9] = {4, 0, 0, 0, 0, 4, 0, 0, 0};
    size_t mdf[9];
    size_t md = table(&f, 9, mdsz, mdf, NULL);
    link_to(&f, mf[9], md);
    s = string(&f, "identity");
    link_to(&f, mdf[0], s);
    size_t lv = vector(&f, 2, 4, 4);
    link_to(&f, mdf[5], lv);
    s = string(&f, "cat");
    link_to(&f, lv + 4, s);
    s = string(&f, "dog");
    link_to(&f, lv + 8, s);

    size_t ws = put(&f, 64, 64);
    for (int i = 0; i < 4; i++) {
        float v = (float)(i + 1);
        memcpy(buf + ws + 4 * (size_t)i, &v, 4);
    }
    w64(buf, mf[7], ws);
    w64(buf, mf[8], 64);
    L->weight_segment = ws;
    return f.n;
}

/* ---- helpers ----------------------------------------------------------------------------- */

uint64_t eb_test_rand(uint64_t *s) {
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

void eb_test_mutate(uint8_t *buf, size_t *len, size_t focus, uint64_t *st) {
    static const uint32_t interesting32[] = {0,          1,          2,          4,
                                             8,          64,         0x7f,       0x80,
                                             0xff,       0x100,      0x7fff,     0x8000,
                                             0xffff,     0x7fffffff, 0x80000000, 0xfffffffe,
                                             0xffffffff, 0xfffffff0, 0x10000000};
    static const uint64_t interesting64[] = {0, 1, (uint64_t)-1, (uint64_t)1 << 40,
                                             ((uint64_t)1 << 40) + 1, (uint64_t)1 << 62,
                                             (uint64_t)INT64_MAX, (uint64_t)INT64_MIN, 64, 3};
    int n = 1 + (int)(eb_test_rand(st) % 4);
    for (int k = 0; k < n && *len > 0; k++) {
        size_t L = *len;
        size_t span = (focus > 0 && focus < L && eb_test_rand(st) % 16 != 0) ? focus : L;
        size_t pos = (size_t)(eb_test_rand(st) % span);
        switch (eb_test_rand(st) % 9) {
        case 0: case 1: /* bit flip */
            buf[pos] ^= (uint8_t)(1u << (eb_test_rand(st) % 8));
            break;
        case 2: /* random byte */
            buf[pos] = (uint8_t)eb_test_rand(st);
            break;
        case 3: case 4: { /* interesting 32-bit value at an aligned position */
            size_t p = pos & ~(size_t)3;
            if (p + 4 <= L) {
                uint32_t v = interesting32[eb_test_rand(st) % (sizeof interesting32 / 4)];
                if (eb_test_rand(st) % 4 == 0) v = (uint32_t)L - (uint32_t)p + (uint32_t)(eb_test_rand(st) % 16) - 8;
                w32(buf, p, v);
            }
            break;
        }
        case 5: { /* interesting 64-bit value */
            size_t p = pos & ~(size_t)7;
            if (p + 8 <= L) w64(buf, p, interesting64[eb_test_rand(st) % (sizeof interesting64 / 8)]);
            break;
        }
        case 6: /* truncate (rarely: most truncations only cut into the weight segment) */
            if (eb_test_rand(st) % 4 == 0) *len = pos;
            else buf[pos] ^= 0x80;
            break;
        case 7: { /* small +/- delta on a 16-bit value (vtable entries) */
            size_t p = pos & ~(size_t)1;
            if (p + 2 <= L) {
                uint16_t v = (uint16_t)(buf[p] | (buf[p + 1] << 8));
                v = (uint16_t)(v + (uint16_t)((eb_test_rand(st) % 17) - 8));
                w16(buf, p, v);
            }
            break;
        }
        case 8: { /* duplicate a chunk over another place */
            size_t q = (size_t)(eb_test_rand(st) % L);
            size_t m = (size_t)(eb_test_rand(st) % 32);
            if (pos + m <= L && q + m <= L) memmove(buf + q, buf + pos, m);
            break;
        }
        }
    }
}

static const char SENTINEL[] = "<sentinel: no error was set>";

static void reset_error(void) { eb_set_error(EB_OK, "%s", SENTINEL); }

/* Loads bytes (copied and in place, from a 64-aligned block) and expects `want`. */
static void expect_status(const uint8_t *bytes, size_t len, eb_status want, const char *what) {
    for (int copy = 0; copy < 2; copy++) {
        void *block = NULL;
        uint8_t *p = NULL;
        if (len > 0) {
            block = malloc(len + 64);
            if (!block) {
                CHECK(0, "%s: malloc", what);
                return;
            }
            p = (uint8_t *)block + (64 - ((uintptr_t)block % 64)) % 64;
            memcpy(p, bytes, len);
        }
        eb_model *m = (eb_model *)(uintptr_t)1;
        reset_error();
        eb_status st = eb_model_load_memory(p, len, copy, &m);
        const char *msg = eb_last_error();
        CHECK(st == want, "%s (copy=%d): got %s, want %s: %s", what, copy, eb_status_name(st),
              eb_status_name(want), msg);
        if (st != EB_OK) {
            CHECK(m == NULL, "%s: *out not NULL on failure", what);
            CHECK(msg[0] != '\0' && strcmp(msg, SENTINEL) != 0, "%s: no error message", what);
            if (getenv("EB_TEST_VERBOSE")) printf("  %-40s -> %s: %s\n", what, eb_status_name(st), msg);
        }
        if (st == EB_OK) eb_model_free(m);
        free(block);
    }
}

static void expect_invalid(const uint8_t *b, size_t len, const char *what) {
    expect_status(b, len, EB_ERR_INVALID_BUNDLE, what);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_identity_model(void) {
    uint8_t buf[4096];
    size_t len = eb_test_build_identity(buf, NULL);
    expect_status(buf, len, EB_OK, "valid identity bundle");

    eb_model *m = NULL;
    eb_status st = eb_model_load_memory(buf, len, 1, &m);
    CHECK(st == EB_OK && m, "load identity: %s", eb_last_error());
    if (!m) return;
    CHECK(eb_model_num_inputs(m) == 1, "num_inputs");
    CHECK(eb_model_num_outputs(m) == 1, "num_outputs");
    CHECK(eb_model_num_ops(m) == 0, "num_ops");
    CHECK(eb_model_arena_size(m) == 64, "arena size %zu", eb_model_arena_size(m));
    const char *name = eb_model_io_name(m, 0, 0);
    CHECK(name && strcmp(name, "x") == 0, "input name");
    CHECK(eb_model_io_name(m, 0, 1) == NULL && eb_model_io_name(m, 2, 0) == NULL, "bad io index");
    int64_t dims[EB_MAX_DIMS];
    int nd = eb_model_io_shape(m, 1, 0, dims);
    CHECK(nd == 3 && dims[0] == 1 && dims[1] == 2 && dims[2] == 2, "output shape");
    CHECK(eb_model_io_shape(m, 1, 5, dims) == -1, "bad shape index");
    CHECK(eb_model_io_dtype(m, 0, 0) == EB_FLOAT32, "dtype");
    CHECK(eb_model_find_io(m, 0, "x") == 0 && eb_model_find_io(m, 1, "x") == 0, "find_io");
    CHECK(eb_model_find_io(m, 0, "nope") == -1 && eb_model_find_io(m, 0, NULL) == -1, "find_io miss");
    CHECK(m->tensors[1].is_constant && ((uintptr_t)m->tensors[1].const_data % 64) == 0,
          "constant data 64-aligned");
    float w0;
    memcpy(&w0, m->tensors[1].const_data, 4);
    CHECK(w0 == 1.0f, "constant data");

    for (int threads = 1; threads <= 4; threads += 3) {
        eb_session_options opt = {threads};
        eb_session *s = NULL;
        st = eb_session_create(m, &opt, &s);
        CHECK(st == EB_OK && s, "session create (%d threads): %s", threads, eb_last_error());
        if (!s) continue;
        float in[4] = {1.5f, -2.0f, 3.25f, 0.0f};
        reset_error();
        CHECK(eb_session_set_input(s, 0, in, 3) == EB_ERR_INVALID_ARGUMENT &&
                  strcmp(eb_last_error(), SENTINEL) != 0, "wrong count rejected");
        CHECK(eb_session_set_input(s, 1, in, 4) == EB_ERR_INVALID_ARGUMENT, "bad input index");
        CHECK(eb_session_set_input(s, 0, NULL, 4) == EB_ERR_INVALID_ARGUMENT, "NULL data");
        CHECK(eb_session_set_input(s, 0, in, 4) == EB_OK, "set_input: %s", eb_last_error());
        CHECK(eb_session_run(s) == EB_OK, "run: %s", eb_last_error());
        const float *out = NULL;
        size_t count = 0;
        CHECK(eb_session_get_output(s, 0, &out, &count) == EB_OK && count == 4, "get_output");
        CHECK(out && memcmp(out, in, sizeof in) == 0, "identity output equals input");
        CHECK(eb_session_get_output(s, 1, &out, &count) == EB_ERR_INVALID_ARGUMENT, "bad output");
        CHECK(eb_session_output_shape(s, 0, dims) == 3 && dims[2] == 2, "output_shape");
        CHECK(eb_session_output_shape(s, 1, dims) == -1, "bad output_shape index");
        eb_session_free(s);
    }
    eb_session_options bad_opt = {100000};
    eb_session *s = NULL;
    CHECK(eb_session_create(m, &bad_opt, &s) == EB_ERR_INVALID_ARGUMENT && !s, "too many threads");
    CHECK(eb_session_create(NULL, NULL, &s) == EB_ERR_INVALID_ARGUMENT, "NULL model");
    eb_model_free(m);

    /* From a file (mmap). */
    char path[] = "/tmp/edgebrew_test_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd >= 0) {
        CHECK(write(fd, buf, len) == (ssize_t)len, "write");
        close(fd);
        m = NULL;
        st = eb_model_load_file(path, &m);
        CHECK(st == EB_OK && m, "load_file: %s", eb_last_error());
        if (m) CHECK(((uintptr_t)m->tensors[1].const_data % 64) == 0, "mapped constant aligned");
        eb_model_free(m);
        /* truncated file */
        fd = open(path, O_WRONLY | O_TRUNC);
        if (fd >= 0) {
            CHECK(write(fd, buf, len / 2) == (ssize_t)(len / 2), "write");
            close(fd);
        }
        m = NULL;
        st = eb_model_load_file(path, &m);
        CHECK(st == EB_ERR_INVALID_BUNDLE && !m, "truncated file: %s", eb_status_name(st));
        unlink(path);
    }
    m = (eb_model *)(uintptr_t)1;
    st = eb_model_load_file("/nonexistent/edgebrew.brew", &m);
    CHECK(st == EB_ERR_IO && m == NULL && eb_last_error()[0], "missing file: %s", eb_status_name(st));
    st = eb_model_load_file("/tmp", &m);
    CHECK(st == EB_ERR_IO, "directory: %s", eb_status_name(st));
    CHECK(eb_model_load_file(NULL, &m) == EB_ERR_INVALID_ARGUMENT, "NULL path");
    CHECK(eb_model_load_memory(buf, len, 1, NULL) == EB_ERR_INVALID_ARGUMENT, "NULL out");
    CHECK(eb_model_load_memory(NULL, 10, 1, &m) == EB_ERR_INVALID_ARGUMENT, "NULL data");
    eb_model_free(NULL);
    eb_session_free(NULL);
    CHECK(eb_session_run(NULL) == EB_ERR_INVALID_ARGUMENT, "run NULL");
    CHECK(eb_model_num_inputs(NULL) == -1, "NULL model queries");
}

static void test_malformed(void) {
    uint8_t base[4096], b[4096];
    eb_test_layout L;
    size_t len = eb_test_build_identity(base, &L);
#define FRESH() memcpy(b, base, sizeof b)

    expect_invalid(NULL, 0, "empty (NULL)");
    expect_invalid(base, 0, "empty");
    expect_invalid(base, 3, "3 bytes");
    expect_invalid(base, 7, "7 bytes");
    FRESH();
    memcpy(b + 4, "EBRX", 4);
    expect_invalid(b, len, "wrong identifier");
    FRESH();
    memcpy(b + 4, "\x00\xff\n\x01", 4);
    expect_invalid(b, len, "binary identifier");
    FRESH();
    w32(b, 0, (uint32_t)len + 100);
    expect_invalid(b, len, "root offset past end");
    FRESH();
    w32(b, 0, (uint32_t)len - 2);
    expect_invalid(b, len, "root offset at the last bytes");
    FRESH();
    w32(b, 0, 0xffffffffu);
    expect_invalid(b, len, "root offset 0xffffffff");
    FRESH();
    w32(b, 0, (uint32_t)L.model_table + 2);
    expect_invalid(b, len, "root table misaligned");
    FRESH();
    w32(b, L.model_table, 0x7fffffffu);
    expect_invalid(b, len, "vtable offset out of range (positive)");
    FRESH();
    w32(b, L.model_table, (uint32_t)(-(int32_t)len));
    expect_invalid(b, len, "vtable offset out of range (negative)");
    FRESH();
    w32(b, L.model_table, 0x80000000u);
    expect_invalid(b, len, "vtable offset INT32_MIN");
    FRESH();
    w32(b, L.model_table, r32(b, L.model_table) + 1);
    expect_invalid(b, len, "vtable misaligned");
    FRESH();
    w16(b, L.model_vtable, 0xfffe);
    expect_invalid(b, len, "vtable size huge");
    FRESH();
    w16(b, L.model_vtable, 3);
    expect_invalid(b, len, "vtable size odd");
    FRESH();
    w16(b, L.model_vtable + 2, 0xffff);
    expect_invalid(b, len, "table size past end");
    FRESH();
    w16(b, L.model_vtable + 2, 2);
    expect_invalid(b, len, "table size < 4");
    FRESH();
    w16(b, L.model_vtable + 4 + 2 * 1, 0x2000); /* tensors field beyond the table */
    expect_invalid(b, len, "field offset outside the table");
    FRESH();
    w16(b, L.model_vtable + 4 + 2 * 1, 2); /* tensors field overlapping the soffset */
    expect_invalid(b, len, "field offset inside the soffset");
    FRESH();
    w32(b, L.tensors_vec, 0xffffffffu);
    expect_invalid(b, len, "vector length huge (tensors)");
    FRESH();
    w32(b, L.tensors_vec, 0x40000000u);
    expect_invalid(b, len, "vector length 2^30 (tensors)");
    FRESH();
    w32(b, L.tensor0_shape, 0x20000000u);
    expect_invalid(b, len, "vector length huge (shape)");
    FRESH();
    w32(b, L.tensors_vec + 4, 0xfffffff0u);
    expect_invalid(b, len, "vector element offset out of range");
    FRESH();
    b[L.tensor0_name + 4 + 1] = 'x'; /* the NUL after "x" */
    expect_invalid(b, len, "string without NUL");
    FRESH();
    w32(b, L.tensor0_name, 0xfffffff0u);
    expect_invalid(b, len, "string length huge");
    FRESH();
    w32(b, L.tensor0_name, (uint32_t)(len - L.tensor0_name - 4));
    expect_invalid(b, len, "string running to the end of the buffer");
    FRESH();
    w32(b, L.field_format_version, 0);
    expect_invalid(b, len, "format_version 0");
    FRESH();
    w32(b, L.field_format_version, 2);
    expect_status(b, len, EB_ERR_UNSUPPORTED, "format_version 2");
    FRESH();
    w64(b, L.tensor0_shape + 4, 0);
    expect_invalid(b, len, "dim 0");
    FRESH();
    w64(b, L.tensor0_shape + 4, (uint64_t)-3);
    expect_invalid(b, len, "negative dim");
    FRESH();
    w64(b, L.tensor0_shape + 4, (uint64_t)1 << 40);
    w64(b, L.tensor0_shape + 12, (uint64_t)1 << 40);
    expect_invalid(b, len, "element count overflow");
    FRESH();
    w64(b, L.tensor0_shape + 4, (uint64_t)INT64_MAX);
    expect_invalid(b, len, "dim INT64_MAX");
    FRESH();
    w32(b, L.tensor0_shape, 9);
    expect_invalid(b, len, "9 dims");
    FRESH();
    w64(b, L.tensor0_field_arena_offset, (uint64_t)-5);
    expect_invalid(b, len, "negative arena offset");
    FRESH();
    w64(b, L.tensor0_field_arena_offset, 2);
    expect_invalid(b, len, "misaligned arena offset");
    FRESH();
    w64(b, L.tensor0_field_arena_offset, 60);
    expect_invalid(b, len, "arena slot past arena_size");
    FRESH();
    w64(b, L.tensor0_field_arena_offset, (uint64_t)INT64_MAX - 3);
    expect_invalid(b, len, "arena offset near INT64_MAX");
    FRESH();
    w64(b, L.field_arena_size, ((uint64_t)1 << 40) + 64);
    expect_invalid(b, len, "arena_size over the limit");
    FRESH();
    w64(b, L.field_arena_size, ((uint64_t)1 << 40));
    expect_status(b, len, EB_OK, "huge declared arena (only the used part is allocated)");
    FRESH();
    w32(b, L.outputs_vec + 4, 5);
    expect_invalid(b, len, "output index out of range");
    FRESH();
    w32(b, L.outputs_vec + 4, 0xffffffffu);
    expect_invalid(b, len, "output index -1");
    FRESH();
    w32(b, L.outputs_vec + 4, 1);
    expect_invalid(b, len, "output is a constant");
    FRESH();
    w32(b, L.inputs_vec + 4, 1);
    expect_invalid(b, len, "input is a constant");
    FRESH();
    w32(b, L.outputs_vec, 0);
    expect_invalid(b, len, "no outputs");
    FRESH();
    w32(b, L.tensor1_field_buffer, 7);
    expect_invalid(b, len, "buffer index out of range");
    FRESH();
    w32(b, L.tensor1_field_buffer, (uint32_t)-2);
    expect_invalid(b, len, "buffer index -2");
    FRESH();
    w64(b, L.buffers_vec + 12, 12);
    expect_invalid(b, len, "buffer size != tensor bytes");
    FRESH();
    w64(b, L.buffers_vec + 4, 32);
    expect_invalid(b, len, "buffer offset not 64-aligned");
    FRESH();
    w64(b, L.buffers_vec + 4, 64);
    expect_invalid(b, len, "buffer outside the weight segment");
    FRESH();
    w64(b, L.buffers_vec + 4, (uint64_t)-64);
    expect_invalid(b, len, "buffer offset wraps");
    FRESH();
    w64(b, L.field_ws_offset, L.weight_segment + 8);
    expect_invalid(b, len, "weight segment offset not 64-aligned");
    FRESH();
    w64(b, L.field_ws_size, 128);
    expect_invalid(b, len, "weight segment past the end of the file");
    FRESH();
    w64(b, L.field_ws_offset, (uint64_t)-64);
    expect_invalid(b, len, "weight segment offset wraps");
    expect_invalid(base, len - 1, "file truncated by one byte");
    expect_invalid(base, L.weight_segment, "file truncated before the weights");
    /* tensor 0's dtype byte: table() lays out soffset@0, name@4, shape@8, dtype@12 */
    FRESH();
    b[L.tensor0_table + 12] = 9;
    expect_invalid(b, len, "unknown dtype");
    FRESH();
    b[L.tensor0_table + 12] = 0x80;
    expect_invalid(b, len, "dtype -128");
    FRESH();
    b[L.tensor0_table + 12] = EB_INT8; /* int8 activation without Tensor.quant */
    expect_invalid(b, len, "int8 activation without quantization parameters");
    FRESH();
    b[L.tensor0_table + 12] = EB_INT32;
    expect_status(b, len, EB_ERR_UNSUPPORTED, "int32 activation");
#undef FRESH
}

/* ---- attributes -------------------------------------------------------------------------- */

static void test_attrs(void) {
    uint8_t ints[3 * 8], floats[2 * 8];
    int64_t iv[3] = {3, -1, (int64_t)1 << 40};
    double fv[2] = {0.5, -2.25};
    for (int i = 0; i < 3; i++) w64(ints, 8 * (size_t)i, (uint64_t)iv[i]);
    for (int i = 0; i < 2; i++) {
        uint64_t u;
        memcpy(&u, &fv[i], 8);
        w64(floats, 8 * (size_t)i, u);
    }
    eb_attr_entry items[5];
    memset(items, 0, sizeof items);
    items[0] = (eb_attr_entry){"num_output", EB_ATTR_INT, 16, 0, 0, NULL, 0, NULL, ""};
    items[1] = (eb_attr_entry){"eps", EB_ATTR_FLOAT, 0, 1e-5, 0, NULL, 0, NULL, ""};
    items[2] = (eb_attr_entry){"kernel", EB_ATTR_INTS, 0, 0, 3, ints, 0, NULL, ""};
    items[3] = (eb_attr_entry){"coeff", EB_ATTR_FLOATS, 0, 0, 0, NULL, 2, floats, ""};
    items[4] = (eb_attr_entry){"mode", EB_ATTR_STRING, 0, 0, 0, NULL, 0, NULL, "MAX"};
    eb_attrs attrs = {5, items};
    eb_node node;
    memset(&node, 0, sizeof node);
    node.name = "conv1";
    node.type = EB_OP_Convolution;
    node.attrs = &attrs;
    eb_error err;
    int64_t i64;
    double d;
    int64_t iarr[8];
    double darr[8];
    int n;
    const char *s;
    err.msg[0] = 0;

    CHECK(eb_attr_int(&node, "num_output", 1, &i64, &err) == EB_OK && i64 == 16, "attr int");
    CHECK(eb_attr_int(&node, "missing", 7, &i64, &err) == EB_OK && i64 == 7, "attr int default");
    CHECK(eb_attr_int(&node, "eps", 7, &i64, &err) == EB_ERR_INVALID_BUNDLE, "int from float");
    CHECK(strstr(err.msg, "conv1") && strstr(err.msg, "eps") && strstr(err.msg, "Convolution"),
          "message names op and key: %s", err.msg);
    CHECK(eb_attr_float(&node, "eps", 0, &d, &err) == EB_OK && d == 1e-5, "attr float");
    CHECK(eb_attr_float(&node, "num_output", 0, &d, &err) == EB_OK && d == 16.0, "float from int");
    CHECK(eb_attr_float(&node, "mode", 0, &d, &err) == EB_ERR_INVALID_BUNDLE, "float from string");
    CHECK(eb_attr_ints(&node, "kernel", iarr, 8, &n, &err) == EB_OK && n == 3 && iarr[0] == 3 &&
              iarr[1] == -1 && iarr[2] == ((int64_t)1 << 40), "attr ints");
    CHECK(eb_attr_ints(&node, "kernel", iarr, 2, &n, &err) == EB_ERR_INVALID_BUNDLE,
          "ints over max");
    CHECK(eb_attr_ints(&node, "missing", iarr, 2, &n, &err) == EB_OK && n == 0, "ints default");
    CHECK(eb_attr_ints(&node, "coeff", iarr, 8, &n, &err) == EB_ERR_INVALID_BUNDLE, "ints from floats");
    CHECK(eb_attr_floats(&node, "coeff", darr, 8, &n, &err) == EB_OK && n == 2 && darr[0] == 0.5 &&
              darr[1] == -2.25, "attr floats");
    CHECK(eb_attr_floats(&node, "kernel", darr, 8, &n, &err) == EB_OK && n == 3 && darr[1] == -1.0,
          "floats from ints");
    CHECK(eb_attr_floats(&node, "coeff", darr, 1, &n, &err) == EB_ERR_INVALID_BUNDLE, "floats over max");
    CHECK(eb_attr_string(&node, "mode", "SUM", &s, &err) == EB_OK && strcmp(s, "MAX") == 0, "attr string");
    CHECK(eb_attr_string(&node, "missing", "SUM", &s, &err) == EB_OK && strcmp(s, "SUM") == 0,
          "string default");
    CHECK(eb_attr_string(&node, "num_output", "SUM", &s, &err) == EB_ERR_INVALID_BUNDLE,
          "string from int");
    CHECK(eb_attr_has(&node, "eps") && !eb_attr_has(&node, "nope") && !eb_attr_has(NULL, "eps"),
          "attr_has");
    CHECK(eb_attr_int(&node, NULL, 0, &i64, &err) == EB_ERR_INVALID_ARGUMENT, "NULL key");
    CHECK(eb_attr_int(&node, "num_output", 0, NULL, NULL) == EB_ERR_INVALID_ARGUMENT, "NULL out");
    eb_node bare;
    memset(&bare, 0, sizeof bare);
    CHECK(eb_attr_int(&bare, "x", 4, &i64, &err) == EB_OK && i64 == 4, "no attrs at all");

    eb_status st = eb_node_fail(&node, &err, EB_ERR_UNSUPPORTED, "group %d", 3);
    CHECK(st == EB_ERR_UNSUPPORTED && strcmp(err.msg, "op 'conv1' (Convolution): group 3") == 0,
          "eb_node_fail: %s", err.msg);
    CHECK(eb_node_fail(&node, NULL, EB_ERR_RUNTIME, "x") == EB_ERR_RUNTIME, "node_fail NULL err");
}

/* ---- thread pool ------------------------------------------------------------------------- */

typedef struct pool_ctx {
    int *hits;
    int threads;
    int bad_thread;
    eb_pool *pool;
    int nested_ok;
} pool_ctx;

static void mark(void *p, int64_t b, int64_t e, int thread) {
    pool_ctx *c = (pool_ctx *)p;
    if (thread < 0 || thread >= c->threads) c->bad_thread = 1;
    for (int64_t i = b; i < e; i++) __atomic_fetch_add(&c->hits[i], 1, __ATOMIC_RELAXED);
}

static void nested_inner(void *p, int64_t b, int64_t e, int thread) {
    int *seen = (int *)p;
    (void)thread;
    for (int64_t i = b; i < e; i++) seen[i]++;
}

static void nested(void *p, int64_t b, int64_t e, int thread) {
    pool_ctx *c = (pool_ctx *)p;
    int seen[5] = {0};
    eb_pool_run(c->pool, 5, nested_inner, seen); /* inline */
    int ok = 1;
    for (int i = 0; i < 5; i++) ok &= seen[i] == 1;
    if (!ok) __atomic_store_n(&c->nested_ok, 0, __ATOMIC_RELAXED);
    mark(p, b, e, thread);
}

static void test_threadpool(void) {
    for (int threads = 1; threads <= 8; threads *= 2) {
        eb_pool *pool = threads > 1 ? eb_pool_create(threads) : NULL;
        CHECK(threads == 1 || pool, "pool create %d", threads);
        static const int64_t sizes[] = {0, 1, 2, 3, 7, 8, 9, 1000, 12345};
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            int64_t n = sizes[k];
            int *hits = (int *)calloc((size_t)n + 1, sizeof(int));
            pool_ctx c = {hits, threads, 0, pool, 1};
            for (int rep = 0; rep < 3; rep++) eb_pool_run(pool, n, rep == 2 ? nested : mark, &c);
            int ok = 1;
            for (int64_t i = 0; i < n; i++) ok &= hits[i] == 3;
            CHECK(ok, "pool %d threads, n=%lld: every index run exactly once per call", threads,
                  (long long)n);
            CHECK(!c.bad_thread, "thread index in range");
            CHECK(c.nested_ok, "nested parallel_for runs inline");
            free(hits);
        }
        eb_pool_free(pool);
    }
    /* The split depends only on n and the chunk count, covers [0, n), sizes differ by <= 1. */
    for (int chunks = 1; chunks <= 9; chunks++) {
        int64_t n = 100, prev_end = 0, mn = n, mx = 0;
        for (int i = 0; i < chunks; i++) {
            int64_t b, e;
            eb_pool_chunk(n, chunks, i, &b, &e);
            if (b != prev_end) mn = -1;
            prev_end = e;
            if (e - b < mn) mn = e - b;
            if (e - b > mx) mx = e - b;
        }
        CHECK(prev_end == n && mn >= 0 && mx - mn <= 1, "chunking %d", chunks);
    }
}

/* ---- registry ---------------------------------------------------------------------------- */

static void test_registry(void) {
    CHECK(eb_find_kernel(-1) == NULL && eb_find_kernel(EB_NUM_OP_TYPES) == NULL, "registry range");
    char buf[1024];
    int missing = eb_missing_kernels(buf, sizeof buf);
    CHECK(missing >= 0 && missing <= EB_NUM_OP_TYPES, "missing count");
    CHECK(eb_missing_kernels(NULL, 0) == missing, "missing count without buffer");
    char tiny[8];
    eb_missing_kernels(tiny, sizeof tiny);
    CHECK(strlen(tiny) < sizeof tiny, "truncated list stays terminated");
    printf("kernels missing from this build: %d%s%s\n", missing, missing ? ": " : "",
           missing ? buf : "");
    CHECK(strcmp(eb_version(), "0.1.0") == 0, "version");
    CHECK(strcmp(eb_status_name(EB_ERR_INVALID_BUNDLE), "EB_ERR_INVALID_BUNDLE") == 0, "status name");
    CHECK(strcmp(eb_status_name((eb_status)99), "EB_ERR_UNKNOWN") == 0, "unknown status name");
}

/* ---- in-process mutations of the valid bundle -------------------------------------------- */

static void test_mutations(int iterations) {
    uint8_t base[4096], b[4096];
    size_t base_len = eb_test_build_identity(base, NULL);
    uint64_t rng = 12345;
    int loaded = 0, empty_msg = 0, bad_status = 0;
    for (int it = 0; it < iterations; it++) {
        memcpy(b, base, sizeof b);
        size_t len = base_len;
        eb_test_mutate(b, &len, 0, &rng);
        eb_model *m = NULL;
        reset_error();
        eb_status st = eb_model_load_memory(b, len, (int)(it & 1), &m);
        if (st != EB_OK) {
            if (!eb_last_error()[0] || strcmp(eb_last_error(), SENTINEL) == 0) empty_msg++;
            if (st < EB_ERR_INVALID_ARGUMENT || st > EB_ERR_RUNTIME) bad_status++;
            continue;
        }
        loaded++;
        eb_session *s = NULL;
        if (eb_session_create(m, NULL, &s) == EB_OK) {
            for (int i = 0; i < eb_model_num_inputs(m); i++) {
                int64_t dims[EB_MAX_DIMS];
                int nd = eb_model_io_shape(m, 0, i, dims);
                size_t count = 1;
                for (int d = 0; d < nd; d++) count *= (size_t)dims[d];
                float *z = (float *)calloc(count, sizeof(float));
                if (z) eb_session_set_input(s, i, z, count);
                free(z);
            }
            if (eb_session_run(s) == EB_OK) {
                for (int i = 0; i < eb_model_num_outputs(m); i++) {
                    const float *o;
                    size_t c;
                    if (eb_session_get_output(s, i, &o, &c) == EB_OK && c > 0) {
                        volatile float sink = o[c - 1];
                        (void)sink;
                    }
                }
            }
            eb_session_free(s);
        }
        eb_model_free(m);
    }
    CHECK(empty_msg == 0, "%d failures without a message", empty_msg);
    CHECK(bad_status == 0, "%d unknown statuses", bad_status);
    printf("mutations: %d cases, %d loaded\n", iterations, loaded);
}

void eb_test_core(int fuzz_iterations) {
    test_identity_model();
    test_malformed();
    test_attrs();
    test_threadpool();
    test_registry();
    if (fuzz_iterations > 0) test_mutations(fuzz_iterations);
}
