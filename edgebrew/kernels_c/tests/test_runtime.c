/* edgebrew_test: the C-level test program of libedgebrew.
 *
 *   edgebrew_test [--self-test] [--iterations N]
 *       Built-in checks (test_core.c): hand-built valid and corrupted bundles, attributes,
 *       thread pool, registry, N in-process mutations (default 2000).
 *   edgebrew_test BUNDLE.brew [--threads N] [--runs N] [--memory] [--input FILE.f32]...
 *                             [--dump DIR]
 *       Loads a bundle (mmap, or from memory with --memory), prints its inputs and outputs,
 *       feeds zeros (or the raw float32 files given with --input, one per model input, in
 *       order), runs it, and prints each output's shape and statistics; --dump writes
 *       DIR/output_<i>.f32 (raw little-endian float32).
 *   edgebrew_test --fuzz [-j N] [--timeout S] [--threads N] [--leak-check N] [--in-process]
 *                        [-q] PATH...
 *       Each PATH is a bundle file, a directory of them, or a case container (a file that
 *       starts with "EBFZCAS1" followed by cases, each a u32 little-endian length and that many
 *       bytes). Each case runs in a fork()ed child: load from memory; if it loads, create a
 *       session, set zero inputs, run, read the outputs. Reported per case: the status and
 *       message, or CRASH (signal / sanitizer exit) or HANG (no result within S seconds,
 *       default 10). -j runs N children at once. In a sanitized build every Nth child
 *       (--leak-check, default 10; 0 = none) also runs LeakSanitizer's check at exit.
 *       -q reports only the failed cases. --in-process runs the cases one after another in
 *       this process instead (faster, and one leak check at exit covers every case; but a
 *       crash or hang ends the whole run).
 *   edgebrew_test --mutate BUNDLE|builtin COUNT [--seed S] [--save DIR] [fuzz options]
 *       Like --fuzz, over COUNT random mutations of one bundle (or of the built-in one).
 *   edgebrew_test --missing-kernels
 *       Lists the op types without a kernel in this build; exit status 1 if any.
 *
 * Every mode ends with a line "N passed, M failed"; the exit status is 0 only if M == 0.
 * In fuzz modes a case passes when it gives an error status with a message, or runs.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "core/diag.h"
#include "edgebrew.h"
#include "test_common.h"

int eb_t_passed = 0, eb_t_failed = 0;

static int summary_and_exit(void) {
    printf("%d passed, %d failed\n", eb_t_passed, eb_t_failed);
    fflush(stdout);
    return eb_t_failed == 0 ? 0 : 1;
}

static int read_file(const char *path, uint8_t **out, size_t *len) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = (uint8_t *)malloc(cap);
    if (!b) {
        fclose(f);
        return -1;
    }
    for (;;) {
        if (n == cap) {
            uint8_t *nb = (uint8_t *)realloc(b, cap * 2);
            if (!nb) {
                free(b);
                fclose(f);
                return -1;
            }
            b = nb;
            cap *= 2;
        }
        size_t k = fread(b + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(b);
        return -1;
    }
    *out = b;
    *len = n;
    return 0;
}

/* ---- bundle mode ------------------------------------------------------------------------- */

static void print_shape(const int64_t *dims, int nd) {
    printf("[");
    for (int d = 0; d < nd; d++) printf("%s%lld", d ? "," : "", (long long)dims[d]);
    printf("]");
}

static int run_bundle(int argc, char **argv) {
    const char *path = argv[1];
    int threads = 1, runs = 1, memory = 0;
    const char *dump = NULL;
    const char *inputs[64];
    int n_in_files = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--memory")) memory = 1;
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc) dump = argv[++i];
        else if (!strcmp(argv[i], "--input") && i + 1 < argc && n_in_files < 64)
            inputs[n_in_files++] = argv[++i];
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    eb_model *m = NULL;
    eb_status st;
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (memory) {
        if (read_file(path, &bytes, &len)) {
            fprintf(stderr, "cannot read %s\n", path);
            return 2;
        }
        st = eb_model_load_memory(bytes, len, 1, &m);
        free(bytes);
    } else {
        st = eb_model_load_file(path, &m);
    }
    CHECK(st == EB_OK, "load %s: %s: %s", path, eb_status_name(st), eb_last_error());
    if (st != EB_OK) {
        printf("load: %s: %s\n", eb_status_name(st), eb_last_error());
        return summary_and_exit();
    }
    printf("model: %d ops, %d inputs, %d outputs, arena %zu bytes\n", eb_model_num_ops(m),
           eb_model_num_inputs(m), eb_model_num_outputs(m), eb_model_arena_size(m));
    eb_session_options opt = {threads};
    eb_session *s = NULL;
    st = eb_session_create(m, &opt, &s);
    CHECK(st == EB_OK, "session: %s", eb_last_error());
    if (st != EB_OK) {
        eb_model_free(m);
        return summary_and_exit();
    }
    /* The inputs are set before every run: the memory plan may reuse an input's bytes for
     * activations computed after its last use. */
    int n_in = eb_model_num_inputs(m);
    float **in_data = (float **)calloc((size_t)(n_in > 0 ? n_in : 1), sizeof(float *));
    size_t *in_count = (size_t *)calloc((size_t)(n_in > 0 ? n_in : 1), sizeof(size_t));
    CHECK(in_data && in_count, "out of memory");
    for (int i = 0; in_data && in_count && i < n_in; i++) {
        int64_t dims[EB_MAX_DIMS];
        int nd = eb_model_io_shape(m, 0, i, dims);
        size_t count = 1;
        for (int d = 0; d < nd; d++) count *= (size_t)dims[d];
        printf("input %d '%s' ", i, eb_model_io_name(m, 0, i));
        print_shape(dims, nd);
        float *data = NULL;
        if (i < n_in_files) {
            uint8_t *raw = NULL;
            size_t rlen = 0;
            if (read_file(inputs[i], &raw, &rlen) || rlen != count * sizeof(float)) {
                CHECK(0, "input file %s: unreadable or not %zu float32 values", inputs[i], count);
                free(raw);
                raw = NULL;
            }
            data = (float *)raw;
            printf(" from %s\n", inputs[i]);
        } else {
            data = (float *)calloc(count ? count : 1, sizeof(float));
            CHECK(data != NULL, "out of memory");
            printf(" zeros\n");
        }
        in_data[i] = data;
        in_count[i] = count;
    }
    for (int r = 0; r < runs; r++) {
        for (int i = 0; in_data && in_count && i < n_in; i++) {
            if (!in_data[i]) continue;
            eb_status si = eb_session_set_input(s, i, in_data[i], in_count[i]);
            CHECK(si == EB_OK, "set_input %d: %s", i, eb_last_error());
        }
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        st = eb_session_run(s);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        CHECK(st == EB_OK, "run: %s: %s", eb_status_name(st), eb_last_error());
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        printf("run %d: %s (%.3f ms)\n", r, eb_status_name(st), ms);
        if (st != EB_OK) break;
    }
    if (st == EB_OK) {
        for (int i = 0; i < eb_model_num_outputs(m); i++) {
            const float *o = NULL;
            size_t count = 0;
            st = eb_session_get_output(s, i, &o, &count);
            CHECK(st == EB_OK, "get_output %d: %s", i, eb_last_error());
            if (st != EB_OK) continue;
            int64_t dims[EB_MAX_DIMS];
            int nd = eb_session_output_shape(s, i, dims);
            double sum = 0, mn = INFINITY, mx = -INFINITY;
            size_t nonfinite = 0;
            for (size_t k = 0; k < count; k++) {
                double v = o[k];
                if (!isfinite(v)) {
                    nonfinite++;
                    continue;
                }
                sum += v;
                if (v < mn) mn = v;
                if (v > mx) mx = v;
            }
            printf("output %d '%s' ", i, eb_model_io_name(m, 1, i));
            print_shape(dims, nd);
            printf(" count=%zu sum=%.6g min=%.6g max=%.6g nonfinite=%zu first:", count, sum, mn,
                   mx, nonfinite);
            for (size_t k = 0; k < count && k < 8; k++) printf(" %.6g", (double)o[k]);
            printf("\n");
            if (dump) {
                char p[4096];
                snprintf(p, sizeof p, "%s/output_%d.f32", dump, i);
                FILE *f = fopen(p, "wb");
                CHECK(f && fwrite(o, sizeof(float), count, f) == count, "write %s", p);
                if (f) fclose(f);
            }
        }
    }
    for (int i = 0; in_data && i < n_in; i++) free(in_data[i]);
    free(in_data);
    free(in_count);
    eb_session_free(s);
    eb_model_free(m);
    return summary_and_exit();
}

/* ---- fuzz driver ------------------------------------------------------------------------- */

typedef struct fz_opts {
    int timeout;
    int threads;
    int jobs;
    int quiet;
    int leak_every; /* LeakSanitizer's exit check in every Nth child (0: none) */
    int in_process; /* no fork: faster, every case under one leak check, but a crash ends all */
} fz_opts;

/* The cases, materialized one at a time in the parent just before each fork (so the parent,
 * which every child copies and LeakSanitizer scans, holds at most one case): a slice of a
 * mapped case container, a file read on demand, or the next mutation of a base bundle. */
typedef struct fz_entry {
    char *path;             /* a file to read, or NULL */
    const uint8_t *slice;   /* else bytes in a mapped container */
    size_t len;
    size_t sub;             /* index inside its container, for the name */
} fz_entry;

typedef struct fz_source {
    fz_entry *v;
    size_t n, cap;
    void **maps;            /* mapped containers */
    size_t *map_sizes;
    size_t n_maps;
    /* mutation mode */
    const uint8_t *base;
    size_t base_len;
    size_t n_mutations;
    size_t focus;           /* bytes before the first weight buffer */
    uint64_t rng;
    const char *save_dir;
    /* the current case */
    uint8_t *buf;
    size_t buf_cap;
} fz_source;

static int src_push(fz_source *s, fz_entry e) {
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        fz_entry *nv = (fz_entry *)realloc(s->v, nc * sizeof *nv);
        if (!nv) return -1;
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = e;
    return 0;
}

static size_t src_count(const fz_source *s) { return s->base ? s->n_mutations : s->n; }

static int src_reserve(fz_source *s, size_t n) {
    if (n <= s->buf_cap) return 0;
    uint8_t *nb = (uint8_t *)realloc(s->buf, n);
    if (!nb) return -1;
    s->buf = nb;
    s->buf_cap = n;
    return 0;
}

/* Case i (called with i = 0, 1, 2, ... in order). */
static int src_get(fz_source *s, size_t i, const uint8_t **data, size_t *len, char *name,
                   size_t cap) {
    if (s->base) {
        if (src_reserve(s, s->base_len ? s->base_len : 1)) return -1;
        memcpy(s->buf, s->base, s->base_len);
        size_t l = s->base_len;
        eb_test_mutate(s->buf, &l, s->focus, &s->rng);
        snprintf(name, cap, "mutation-%zu", i);
        if (s->save_dir) {
            char p[4200];
            snprintf(p, sizeof p, "%s/%s.brew", s->save_dir, name);
            FILE *f = fopen(p, "wb");
            if (f) {
                if (l) fwrite(s->buf, 1, l, f);
                fclose(f);
            }
        }
        *data = s->buf;
        *len = l;
        return 0;
    }
    const fz_entry *e = &s->v[i];
    if (e->slice || !e->path) {
        snprintf(name, cap, "%s#%zu", e->path ? e->path : "?", e->sub);
        *data = e->slice;
        *len = e->len;
        return 0;
    }
    snprintf(name, cap, "%s", e->path);
    FILE *f = fopen(e->path, "rb");
    if (!f) return -1;
    size_t n = 0;
    for (;;) {
        if (src_reserve(s, n + 65536)) {
            fclose(f);
            return -1;
        }
        size_t k = fread(s->buf + n, 1, s->buf_cap - n, f);
        n += k;
        if (k == 0) break;
    }
    fclose(f);
    *data = s->buf;
    *len = n;
    return 0;
}

static void src_free(fz_source *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i].path);
    for (size_t i = 0; i < s->n_maps; i++) munmap(s->maps[i], s->map_sizes[i]);
    free(s->v);
    free(s->maps);
    free(s->map_sizes);
    free(s->buf);
}

static const char CONTAINER_MAGIC[8] = {'E', 'B', 'F', 'Z', 'C', 'A', 'S', '1'};

static int add_file(fz_source *s, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    struct stat st;
    char magic[8] = {0};
    ssize_t got = fstat(fd, &st) == 0 ? read(fd, magic, 8) : -1;
    if (got == 8 && memcmp(magic, CONTAINER_MAGIC, 8) == 0) {
        size_t size = (size_t)st.st_size;
        void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (map == MAP_FAILED) {
            fprintf(stderr, "cannot map %s\n", path);
            return -1;
        }
        void **nm = (void **)realloc(s->maps, (s->n_maps + 1) * sizeof *nm);
        if (nm) s->maps = nm;
        size_t *ns = (size_t *)realloc(s->map_sizes, (s->n_maps + 1) * sizeof *ns);
        if (ns) s->map_sizes = ns;
        if (!nm || !ns) {
            munmap(map, size);
            return -1;
        }
        s->maps[s->n_maps] = map;
        s->map_sizes[s->n_maps++] = size;
        const uint8_t *b = (const uint8_t *)map;
        size_t pos = 8, k = 0;
        while (pos + 4 <= size) {
            uint32_t n = (uint32_t)b[pos] | ((uint32_t)b[pos + 1] << 8) |
                         ((uint32_t)b[pos + 2] << 16) | ((uint32_t)b[pos + 3] << 24);
            pos += 4;
            if (n > size - pos) {
                fprintf(stderr, "%s: case %zu is truncated\n", path, k);
                return -1;
            }
            char *p = strdup(path);
            if (!p || src_push(s, (fz_entry){p, b + pos, n, k++})) return -1;
            pos += n;
        }
        return 0;
    }
    close(fd);
    char *p = strdup(path);
    if (!p) return -1;
    return src_push(s, (fz_entry){p, NULL, 0, 0});
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_path(fz_source *s, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "cannot stat %s\n", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) return add_file(s, path);
    DIR *d = opendir(path);
    if (!d) return -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = (char **)realloc(names, cap * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (names[n]) n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, names[i]);
        struct stat s2;
        if (rc == 0 && stat(p, &s2) == 0 && S_ISREG(s2.st_mode)) rc = add_file(s, p);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* Runs one case; writes "<status>\t<phase>\t<message>" into out. */
static void run_case(const uint8_t *data, size_t len, const fz_opts *o, char *out, size_t cap) {
    const char *phase = "load";
    eb_model *m = NULL;
    eb_session *s = NULL;
    eb_status st = eb_model_load_memory(data, len, 0, &m);
    if (st == EB_OK) {
        phase = "session";
        eb_session_options opt = {o->threads};
        st = eb_session_create(m, &opt, &s);
    }
    if (st == EB_OK) {
        phase = "set_input";
        for (int i = 0; i < eb_model_num_inputs(m) && st == EB_OK; i++) {
            int64_t dims[EB_MAX_DIMS];
            int nd = eb_model_io_shape(m, 0, i, dims);
            size_t count = 1;
            for (int d = 0; d < nd; d++) count *= (size_t)dims[d];
            float *z = (float *)calloc(count ? count : 1, sizeof(float));
            st = z ? eb_session_set_input(s, i, z, count) : EB_ERR_OUT_OF_MEMORY;
            free(z);
        }
    }
    if (st == EB_OK) {
        phase = "run";
        st = eb_session_run(s);
    }
    if (st == EB_OK) {
        phase = "output";
        for (int i = 0; i < eb_model_num_outputs(m) && st == EB_OK; i++) {
            const float *p = NULL;
            size_t count = 0;
            st = eb_session_get_output(s, i, &p, &count);
            if (st == EB_OK && count > 0) {
                volatile float sink = p[0] + p[count - 1];
                (void)sink;
            }
        }
    }
    const char *msg = st == EB_OK ? "" : eb_last_error();
    snprintf(out, cap, "%d\t%s\t%s", (int)st, phase, msg);
    for (char *q = out; *q; q++)
        if (*q == '\n') *q = ' ';
    eb_session_free(s);
    eb_model_free(m);
}

/* In the child: run one case, write its result to fd, exit. */
static void child_case(const uint8_t *data, size_t len, const fz_opts *o, int fd, int leak_check) {
    alarm((unsigned)o->timeout);
    char out[1024];
    run_case(data, len, o, out, sizeof out);
    size_t n = strlen(out), w = 0;
    while (w < n) {
        ssize_t k = write(fd, out + w, n - w);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        w += (size_t)k;
    }
    close(fd);
    /* exit() runs LeakSanitizer's check (in sanitized builds; it costs several ms per child);
     * _exit() skips it. */
    if (leak_check) exit(0);
    _exit(0);
}

typedef struct fz_slot {
    pid_t pid;
    int fd;
    size_t index;
} fz_slot;

/* Turns a finished child's wait status and output into a report line; returns 1 if passed. */
static int judge(const char *name, int wstatus, const char *res, const fz_opts *o, char *line,
                 size_t cap) {
    if (WIFSIGNALED(wstatus)) {
        int sig = WTERMSIG(wstatus);
        if (sig == SIGALRM)
            snprintf(line, cap, "%s: HANG (no result within %d s)", name, o->timeout);
        else
            snprintf(line, cap, "%s: CRASH (signal %d, %s)", name, sig, strsignal(sig));
        return 0;
    }
    int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    if (res[0] == '\0') {
        snprintf(line, cap, "%s: CRASH (exit code %d without a result; sanitizer report above?)",
                 name, code);
        return 0;
    }
    int st = atoi(res);
    const char *phase = strchr(res, '\t');
    const char *msg = phase ? strchr(phase + 1, '\t') : NULL;
    char ph[32] = "?";
    if (phase && msg) {
        size_t k = (size_t)(msg - phase - 1);
        if (k >= sizeof ph) k = sizeof ph - 1;
        memcpy(ph, phase + 1, k);
        ph[k] = '\0';
        msg++;
    } else {
        msg = "";
    }
    if (code != 0) {
        snprintf(line, cap, "%s: FAIL (exit code %d at exit, e.g. a leak, after %s at %s)", name,
                 code, eb_status_name((eb_status)st), ph);
        return 0;
    }
    if (st < EB_OK || st > EB_ERR_RUNTIME) {
        snprintf(line, cap, "%s: FAIL (unknown status %d)", name, st);
        return 0;
    }
    if (st != EB_OK && msg[0] == '\0') {
        snprintf(line, cap, "%s: FAIL (%s at %s with an empty message)", name,
                 eb_status_name((eb_status)st), ph);
        return 0;
    }
    if (st == EB_OK)
        snprintf(line, cap, "%s: OK (loaded and ran)", name);
    else
        snprintf(line, cap, "%s: %s at %s: %s", name, eb_status_name((eb_status)st), ph, msg);
    return 1;
}

/* The parent's allocations, reachable from here so that LeakSanitizer in a child (which exits
 * without freeing what it inherited) does not report them. */
static void *volatile g_parent_heap[8];

static int fuzz_cases(fz_source *src, const fz_opts *o) {
    enum { LINE = 700, NAME = 512 };
    size_t n = src_count(src);
    char *lines = (char *)calloc(n ? n : 1, LINE);
    unsigned char *done = (unsigned char *)calloc(n ? n : 1, 1);
    unsigned char *ok = (unsigned char *)calloc(n ? n : 1, 1);
    fz_slot *slots = (fz_slot *)calloc((size_t)o->jobs, sizeof *slots);
    char *names = (char *)calloc((size_t)o->jobs, NAME);
    g_parent_heap[0] = lines;
    g_parent_heap[1] = done;
    g_parent_heap[2] = ok;
    g_parent_heap[3] = slots;
    g_parent_heap[4] = names;
    int rc = 0;
    if (!lines || !done || !ok || !slots || !names) {
        fprintf(stderr, "out of memory\n");
        rc = 2;
        goto out;
    }
    size_t next = 0, printed = 0;
    int running = 0;
    int counts[8] = {0};
    int crashes = 0, hangs = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (next < n || running > 0) {
        while (running < o->jobs && next < n) {
            int k;
            for (k = 0; k < o->jobs; k++)
                if (slots[k].pid == 0) break;
            const uint8_t *data = NULL;
            size_t len = 0;
            if (src_get(src, next, &data, &len, names + (size_t)k * NAME, NAME)) {
                snprintf(lines + next * LINE, LINE, "%s: cannot read the case",
                         names + (size_t)k * NAME);
                done[next] = 1;
                ok[next] = 0;
                next++;
                continue;
            }
            if (o->in_process) {
                char res[1100];
                run_case(data, len, o, res, sizeof res);
                ok[next] = (unsigned char)judge(names + (size_t)k * NAME, 0, res, o,
                                                lines + next * LINE, LINE);
                done[next] = 1;
                int st = atoi(res);
                if (st >= 0 && st < 8) counts[st]++;
                next++;
                continue;
            }
            int p[2];
            if (pipe(p) != 0) {
                perror("pipe");
                rc = 2;
                goto out;
            }
            fflush(stdout);
            fflush(stderr);
            pid_t pid = fork();
            if (pid < 0) {
                perror("fork");
                rc = 2;
                goto out;
            }
            if (pid == 0) {
                close(p[0]);
                child_case(data, len, o, p[1],
                           o->leak_every > 0 && next % (size_t)o->leak_every == 0);
            }
            close(p[1]);
            slots[k].pid = pid;
            slots[k].fd = p[0];
            slots[k].index = next;
            running++;
            next++;
        }
        if (running > 0) {
            int wstatus;
            pid_t pid = waitpid(-1, &wstatus, 0);
            if (pid < 0) {
                if (errno == EINTR) continue;
                perror("waitpid");
                rc = 2;
                goto out;
            }
            int k;
            for (k = 0; k < o->jobs; k++)
                if (slots[k].pid == pid) break;
            if (k == o->jobs) continue; /* not ours */
            char res[1100];
            size_t got = 0;
            for (;;) {
                ssize_t r = read(slots[k].fd, res + got, sizeof res - 1 - got);
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) break;
                got += (size_t)r;
                if (got == sizeof res - 1) break;
            }
            res[got] = '\0';
            close(slots[k].fd);
            size_t idx = slots[k].index;
            slots[k].pid = 0;
            running--;
            ok[idx] = (unsigned char)judge(names + (size_t)k * NAME, wstatus, res, o,
                                           lines + idx * LINE, LINE);
            done[idx] = 1;
            if (WIFSIGNALED(wstatus)) {
                if (WTERMSIG(wstatus) == SIGALRM) hangs++;
                else crashes++;
            } else if (res[0]) {
                int st = atoi(res);
                if (st >= 0 && st < 8) counts[st]++;
            }
        }
        while (printed < n && done[printed]) {
            if (!o->quiet || !ok[printed]) printf("case %zu %s\n", printed, lines + printed * LINE);
            if (ok[printed]) eb_t_passed++;
            else eb_t_failed++;
            printed++;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("fuzz: %zu cases in %.2f s (%.0f cases/s): ran %d, ", n, secs,
           secs > 0 ? (double)n / secs : 0.0, counts[EB_OK]);
    for (int st = 1; st < 8; st++)
        if (counts[st]) printf("%s %d, ", eb_status_name((eb_status)st), counts[st]);
    printf("crashes %d, hangs %d\n", crashes, hangs);
out:
    free(lines);
    free(done);
    free(ok);
    free(slots);
    free(names);
    return rc;
}

static int parse_fuzz_opt(int argc, char **argv, int *i, fz_opts *o) {
    if (!strcmp(argv[*i], "-j") && *i + 1 < argc) o->jobs = atoi(argv[++*i]);
    else if (!strcmp(argv[*i], "--timeout") && *i + 1 < argc) o->timeout = atoi(argv[++*i]);
    else if (!strcmp(argv[*i], "--threads") && *i + 1 < argc) o->threads = atoi(argv[++*i]);
    else if (!strcmp(argv[*i], "-q")) o->quiet = 1;
    else if (!strcmp(argv[*i], "--leak-check") && *i + 1 < argc) o->leak_every = atoi(argv[++*i]);
    else if (!strcmp(argv[*i], "--in-process")) o->in_process = 1;
    else return 0;
    if (o->jobs < 1) o->jobs = 1;
    if (o->jobs > 64) o->jobs = 64;
    if (o->timeout < 1) o->timeout = 1;
    return 1;
}

static int run_fuzz(int argc, char **argv) {
    fz_opts o = {10, 1, 1, 0, 10, 0};
    static fz_source src; /* static: reachable for LeakSanitizer in the children */
    memset(&src, 0, sizeof src);
    for (int i = 2; i < argc; i++) {
        if (parse_fuzz_opt(argc, argv, &i, &o)) continue;
        if (add_path(&src, argv[i])) {
            src_free(&src);
            return 2;
        }
    }
    int rc = fuzz_cases(&src, &o);
    src_free(&src);
    if (rc) return rc;
    return summary_and_exit();
}

static int run_mutate(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: edgebrew_test --mutate BUNDLE|builtin COUNT [--seed S] "
                        "[--save DIR] [-j N] [--timeout S] [--threads N] [-q]\n");
        return 2;
    }
    fz_opts o = {10, 1, 1, 0, 10, 0};
    static fz_source src; /* static: reachable for LeakSanitizer in the children */
    memset(&src, 0, sizeof src);
    uint64_t seed = 1;
    long count = atol(argv[3]);
    for (int i = 4; i < argc; i++) {
        if (parse_fuzz_opt(argc, argv, &i, &o)) continue;
        if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--save") && i + 1 < argc) src.save_dir = argv[++i];
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    uint8_t *base;
    size_t base_len;
    if (!strcmp(argv[2], "builtin")) {
        base = (uint8_t *)calloc(1, 4096);
        if (!base) return 2;
        base_len = eb_test_build_identity(base, NULL);
    } else if (read_file(argv[2], &base, &base_len)) {
        fprintf(stderr, "cannot read %s\n", argv[2]);
        return 2;
    }
    src.base = base;
    src.base_len = base_len;
    /* Aim the mutations at the flatbuffer: find where the weights start. */
    src.focus = base_len;
    eb_model *m = NULL;
    if (eb_model_load_memory(base, base_len, 1, &m) == EB_OK) {
        for (int i = 0; i < m->n_tensors; i++)
            if (m->tensors[i].is_constant) {
                size_t off = (size_t)((const uint8_t *)m->tensors[i].const_data - m->data);
                if (off < src.focus) src.focus = off;
            }
        eb_model_free(m);
    }
    printf("mutating %s: %zu bytes, %zu before the weights\n", argv[2], base_len, src.focus);
    g_parent_heap[5] = base;
    src.n_mutations = count > 0 ? (size_t)count : 0;
    src.rng = seed * 0x9E3779B97F4A7C15ull + 1;
    int rc = fuzz_cases(&src, &o);
    src_free(&src);
    free(base);
    if (rc) return rc;
    return summary_and_exit();
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && !strcmp(argv[1], "--fuzz")) return run_fuzz(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "--mutate")) return run_mutate(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "--missing-kernels")) {
        char buf[2048];
        int n = eb_missing_kernels(buf, sizeof buf);
        printf("%d kernels missing%s%s\n", n, n ? ": " : "", n ? buf : "");
        return n == 0 ? 0 : 1;
    }
    if (argc >= 2 && strcmp(argv[1], "--self-test") != 0 && argv[1][0] != '-')
        return run_bundle(argc, argv);
    int iterations = 2000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iterations") && i + 1 < argc) iterations = atoi(argv[++i]);
        else if (strcmp(argv[i], "--self-test") != 0) {
            fprintf(stderr, "unknown option %s (see the header of tests/test_runtime.c)\n", argv[i]);
            return 2;
        }
    }
    printf("libedgebrew %s self-test\n", eb_version());
    eb_test_core(iterations);
    return summary_and_exit();
}
