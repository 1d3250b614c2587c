/* A stand-in for the core (src/core/) so that single ops can be tested before, and apart from,
 * the bundle reader and session: the functions op.h declares, plus mock_run_op(), which
 * prepares and runs one op on caller-owned buffers (for ctypes; see run_mock.py).
 *
 * eb_parallel_for runs real threads and hands out uneven chunks, several per thread, to shake
 * out ops whose results depend on the split; scratch is filled with NaN before each run.
 *
 *   gcc -std=c11 -O2 -shared -fPIC -Iedgebrew/kernels_c/include -Iedgebrew/kernels_c/src \
 *       edgebrew/kernels_c/tests/mock_core.c edgebrew/kernels_c/src/ops/<op>.c ... \
 *       edgebrew/kernels_c/src/kernels/(all .c) -lpthread -lm -o /tmp/libebmock.so
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "op.h"

/* ---- attributes -------------------------------------------------------------------------- */

enum { A_INT, A_FLOAT, A_INTS, A_FLOATS, A_STRING };
#define MOCK_MAX_ATTRS 32
#define MOCK_MAX_VALS 64

typedef struct mock_attr {
    char key[64];
    int kind, n;
    int64_t ints[MOCK_MAX_VALS];
    double floats[MOCK_MAX_VALS];
    char str[128];
} mock_attr;

struct eb_attrs {
    int n;
    mock_attr a[MOCK_MAX_ATTRS];
};

/* "key=i:3;key2=I:1,2;key3=f:0.5;key4=F:1,2.5;key5=s:MAX" */
static int parse_attrs(const char *spec, eb_attrs *out)
{
    memset(out, 0, sizeof(*out));
    const char *p = spec;
    while (*p) {
        if (out->n >= MOCK_MAX_ATTRS) return -1;
        mock_attr *a = &out->a[out->n];
        const char *eq = strchr(p, '=');
        if (!eq || eq - p >= (long)sizeof(a->key) || eq[1] == 0 || eq[2] != ':') return -1;
        memcpy(a->key, p, (size_t)(eq - p));
        const char t = eq[1];
        const char *v = eq + 3;
        const char *semi = strchr(v, ';');
        const size_t len = semi ? (size_t)(semi - v) : strlen(v);
        char buf[1024];
        if (len >= sizeof(buf)) return -1;
        memcpy(buf, v, len);
        buf[len] = 0;
        if (t == 's') {
            a->kind = A_STRING;
            if (len >= sizeof(a->str)) return -1;
            memcpy(a->str, buf, len + 1);
        } else {
            a->kind = t == 'i' ? A_INT : t == 'f' ? A_FLOAT : t == 'I' ? A_INTS : A_FLOATS;
            char *q = buf;
            while (*q) {
                if (a->n >= MOCK_MAX_VALS) return -1;
                char *e;
                if (a->kind == A_INT || a->kind == A_INTS)
                    a->ints[a->n] = strtoll(q, &e, 10);
                else
                    a->floats[a->n] = strtod(q, &e);
                if (e == q) return -1;
                a->n++;
                q = e;
                if (*q == ',') q++;
            }
        }
        out->n++;
        p = semi ? semi + 1 : v + len;
    }
    return 0;
}

static const mock_attr *find_attr(const eb_node *node, const char *key)
{
    for (int i = 0; i < node->attrs->n; i++)
        if (strcmp(node->attrs->a[i].key, key) == 0) return &node->attrs->a[i];
    return NULL;
}

eb_status eb_node_fail(const eb_node *node, eb_error *err, eb_status status, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(err->msg, sizeof(err->msg), "op '%s' (%s): %s", node->name,
             eb_find_kernel(node->type) ? eb_find_kernel(node->type)->type_name : "?", msg);
    return status;
}

static eb_status wrong_kind(const eb_node *node, const char *key, eb_error *err)
{
    return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE, "attribute '%s' has the wrong kind", key);
}

eb_status eb_attr_int(const eb_node *node, const char *key, int64_t dflt, int64_t *out, eb_error *err)
{
    const mock_attr *a = find_attr(node, key);
    if (!a) {
        *out = dflt;
        return EB_OK;
    }
    if (a->kind != A_INT || a->n != 1) return wrong_kind(node, key, err);
    *out = a->ints[0];
    return EB_OK;
}

eb_status eb_attr_float(const eb_node *node, const char *key, double dflt, double *out, eb_error *err)
{
    const mock_attr *a = find_attr(node, key);
    if (!a) {
        *out = dflt;
        return EB_OK;
    }
    if (a->kind == A_INT && a->n == 1) {
        *out = (double)a->ints[0];
        return EB_OK;
    }
    if (a->kind != A_FLOAT || a->n != 1) return wrong_kind(node, key, err);
    *out = a->floats[0];
    return EB_OK;
}

eb_status eb_attr_ints(const eb_node *node, const char *key, int64_t *out, int max, int *n, eb_error *err)
{
    const mock_attr *a = find_attr(node, key);
    *n = 0;
    if (!a) return EB_OK;
    if (a->kind != A_INTS) return wrong_kind(node, key, err);
    if (a->n > max)
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE, "attribute '%s' has %d values, at most %d", key, a->n, max);
    for (int i = 0; i < a->n; i++) out[i] = a->ints[i];
    *n = a->n;
    return EB_OK;
}

eb_status eb_attr_floats(const eb_node *node, const char *key, double *out, int max, int *n, eb_error *err)
{
    const mock_attr *a = find_attr(node, key);
    *n = 0;
    if (!a) return EB_OK;
    if (a->kind != A_FLOATS && a->kind != A_INTS) return wrong_kind(node, key, err);
    if (a->n > max)
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE, "attribute '%s' has %d values, at most %d", key, a->n, max);
    for (int i = 0; i < a->n; i++) out[i] = a->kind == A_INTS ? (double)a->ints[i] : a->floats[i];
    *n = a->n;
    return EB_OK;
}

eb_status eb_attr_string(const eb_node *node, const char *key, const char *dflt, const char **out, eb_error *err)
{
    const mock_attr *a = find_attr(node, key);
    if (!a) {
        *out = dflt;
        return EB_OK;
    }
    if (a->kind != A_STRING) return wrong_kind(node, key, err);
    *out = a->str;
    return EB_OK;
}

int eb_attr_has(const eb_node *node, const char *key) { return find_attr(node, key) != NULL; }

int eb_same_shape(const eb_tensor *a, const eb_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    return 1;
}

/* ---- execution --------------------------------------------------------------------------- */

struct eb_exec {
    int threads;
    float **data; /* by tensor index */
    char **scratch;
    unsigned seed;
};

float *eb_data(eb_exec *ex, const eb_tensor *t) { return ex->data[t->index]; }
void *eb_scratch(eb_exec *ex, int thread) { return ex->scratch[thread]; }
int eb_num_threads(const eb_exec *ex) { return ex->threads; }

void eb_set_output_shape(eb_exec *ex, const eb_node *node, int output, int ndim, const int64_t *dims)
{
    (void)ex, (void)node, (void)output, (void)ndim, (void)dims;
}

typedef struct pf_job {
    eb_range_fn fn;
    void *ctx;
    int thread, nchunks;
    int64_t begin[16], end[16];
} pf_job;

static void *pf_main(void *arg)
{
    pf_job *j = arg;
    for (int c = 0; c < j->nchunks; c++) j->fn(j->ctx, j->begin[c], j->end[c], j->thread);
    return NULL;
}

void eb_parallel_for(eb_exec *ex, int64_t n, eb_range_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (ex->threads <= 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    /* 1..3 uneven chunks per thread, interleaved */
    pf_job jobs[64];
    const int t = ex->threads > 64 ? 64 : ex->threads;
    int total = 0;
    for (int i = 0; i < t; i++) {
        ex->seed = ex->seed * 1103515245u + 12345u;
        jobs[i].nchunks = 1 + (int)((ex->seed >> 16) % 3);
        total += jobs[i].nchunks;
        jobs[i].fn = fn, jobs[i].ctx = ctx, jobs[i].thread = i;
    }
    int64_t cuts[193];
    cuts[0] = 0;
    cuts[total] = n;
    for (int c = 1; c < total; c++) {
        ex->seed = ex->seed * 1103515245u + 12345u;
        cuts[c] = (int64_t)((ex->seed >> 8) % (uint64_t)(n + 1));
    }
    for (int c = 1; c < total; c++) /* sort */
        for (int d = c; d > 1 && cuts[d] < cuts[d - 1]; d--) {
            int64_t tmp = cuts[d];
            cuts[d] = cuts[d - 1];
            cuts[d - 1] = tmp;
        }
    int c = 0;
    for (int k = 0; k < 3; k++) /* round-robin the chunks over threads */
        for (int i = 0; i < t; i++)
            if (k < jobs[i].nchunks) {
                jobs[i].begin[k] = cuts[c];
                jobs[i].end[k] = cuts[c + 1];
                c++;
            }
    pthread_t tid[64];
    for (int i = 1; i < t; i++) pthread_create(&tid[i], NULL, pf_main, &jobs[i]);
    pf_main(&jobs[0]);
    for (int i = 1; i < t; i++) pthread_join(tid[i], NULL);
}

/* ---- registry (this file's ops only) ----------------------------------------------------- */

#define MOCK_WEAK __attribute__((weak))
extern const eb_op_kernel eb_kernel_Convolution MOCK_WEAK, eb_kernel_Deconvolution MOCK_WEAK,
    eb_kernel_Pooling MOCK_WEAK, eb_kernel_InnerProduct MOCK_WEAK, eb_kernel_LRN MOCK_WEAK;

const eb_op_kernel *eb_find_kernel(int op_type)
{
    switch (op_type) {
    case EB_OP_Convolution: return &eb_kernel_Convolution;
    case EB_OP_Deconvolution: return &eb_kernel_Deconvolution;
    case EB_OP_Pooling: return &eb_kernel_Pooling;
    case EB_OP_InnerProduct: return &eb_kernel_InnerProduct;
    case EB_OP_LRN: return &eb_kernel_LRN;
    default: return NULL;
    }
}

static int type_of_name(const char *name)
{
    for (int t = 0; t < EB_NUM_OP_TYPES; t++) {
        const eb_op_kernel *k = eb_find_kernel(t);
        if (k && strcmp(k->type_name, name) == 0) return t;
    }
    return -1;
}

static double last_run_ns = -1.0;
double mock_last_run_ns(void) { return last_run_ns; }

/* Prepare and run one op. dims: 8 per tensor. Returns the eb_status; errbuf gets the message. */
int mock_run_op(const char *type, const char *attr_spec, int n_in, const int *in_ndim,
                const int64_t *in_dims, float **in_data, int n_w, const int *w_ndim,
                const int64_t *w_dims, float **w_data, int n_out, const int *out_ndim,
                const int64_t *out_dims, float **out_data, int threads, char *errbuf, int errlen)
{
    static eb_attrs attrs; /* large: not on the stack; tests call this from one thread */
    eb_error err;
    err.msg[0] = 0;
    errbuf[0] = 0;
    const int op = type_of_name(type);
    if (op < 0) {
        snprintf(errbuf, (size_t)errlen, "unknown op %s", type);
        return EB_ERR_UNSUPPORTED;
    }
    if (parse_attrs(attr_spec, &attrs) != 0) {
        snprintf(errbuf, (size_t)errlen, "bad attribute spec");
        return EB_ERR_INVALID_ARGUMENT;
    }
    const int nt = n_in + n_w + n_out;
    eb_tensor *tens = calloc((size_t)nt, sizeof(eb_tensor));
    const eb_tensor **ptrs = calloc((size_t)nt, sizeof(eb_tensor *));
    float **data = calloc((size_t)nt, sizeof(float *));
    static const char *const names[3] = {"in", "w", "out"};
    for (int i = 0; i < nt; i++) {
        const int grp = i < n_in ? 0 : i < n_in + n_w ? 1 : 2;
        const int j = grp == 0 ? i : grp == 1 ? i - n_in : i - n_in - n_w;
        const int nd = grp == 0 ? in_ndim[j] : grp == 1 ? w_ndim[j] : out_ndim[j];
        const int64_t *d = (grp == 0 ? in_dims : grp == 1 ? w_dims : out_dims) + 8 * j;
        eb_tensor *t = &tens[i];
        char *nm = malloc(16);
        snprintf(nm, 16, "%s%d", names[grp], j);
        t->name = nm;
        t->index = i;
        t->ndim = nd;
        t->count = 1;
        for (int k = 0; k < nd; k++) {
            t->dims[k] = d[k];
            t->count *= d[k];
        }
        t->dtype = EB_FLOAT32;
        t->is_constant = grp == 1;
        data[i] = grp == 0 ? in_data[j] : grp == 1 ? w_data[j] : out_data[j];
        t->const_data = grp == 1 ? data[i] : NULL;
        ptrs[i] = t;
    }
    eb_node node;
    memset(&node, 0, sizeof(node));
    node.name = "op";
    node.type = op;
    node.n_inputs = n_in, node.n_weights = n_w, node.n_outputs = n_out;
    node.inputs = ptrs;
    node.weights = ptrs + n_in;
    node.outputs = ptrs + n_in + n_w;
    node.attrs = &attrs;
    const eb_op_kernel *k = eb_find_kernel(op);
    eb_status s = k->prepare(&node, &err);
    if (s == EB_OK) {
        eb_exec ex;
        ex.threads = threads < 1 ? 1 : threads;
        ex.data = data;
        ex.seed = 12345u + (unsigned)threads;
        ex.scratch = calloc((size_t)ex.threads, sizeof(char *));
        for (int i = 0; i < ex.threads; i++) {
            const size_t sb = (node.scratch_bytes + 63) / 64 * 64;
            ex.scratch[i] = aligned_alloc(64, sb ? sb : 64);
            for (size_t b = 0; b + 4 <= sb; b += 4) {
                const float nanv = NAN;
                memcpy(ex.scratch[i] + b, &nanv, 4);
            }
        }
        /* EB_MOCK_REPS=n runs it n times (benchmarks); mock_last_run_ns() gives the best */
        const char *reps_env = getenv("EB_MOCK_REPS");
        const int reps = reps_env && atoi(reps_env) > 0 ? atoi(reps_env) : 1;
        last_run_ns = -1.0;
        /* EB_BENCH_CPUTIME=1: this thread's CPU time (one-thread runs on a busy host) */
        const char *cpu = getenv("EB_BENCH_CPUTIME");
        const clockid_t clk = cpu && *cpu == '1' ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
        for (int r = 0; r < reps && s == EB_OK; r++) {
            struct timespec t0, t1;
            clock_gettime(clk, &t0);
            s = k->run(&node, &ex);
            clock_gettime(clk, &t1);
            const double ns = 1e9 * (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec);
            if (last_run_ns < 0 || ns < last_run_ns) last_run_ns = ns;
        }
        for (int i = 0; i < ex.threads; i++) free(ex.scratch[i]);
        free(ex.scratch);
    }
    snprintf(errbuf, (size_t)errlen, "%s", err.msg);
    free(node.params);
    for (int i = 0; i < nt; i++) free((void *)tens[i].name);
    free(tens);
    free(ptrs);
    free(data);
    return s;
}

/* The ISA of the kernel table in use (for messages). */
#include "kernels/kernels.h"
const char *mock_isa(void) { return eb_kernels()->isa; }
