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
 *   edgebrew_test --fuzz [-j N] [--timeout S] [--threads N] [-q] PATH...
 *       Each PATH is a bundle file, a directory of them, or a case container (a file that
 *       starts with "EBFZCAS1" followed by cases, each a u32 little-endian length and that many
 *       bytes). Each case runs in a fork()ed child: load from memory; if it loads, create a
 *       session, set zero inputs, run, read the outputs. Reported per case: the status and
 *       message, or CRASH (signal / sanitizer exit) or HANG (no result within S seconds).
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
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
    for (int i = 0; i < eb_model_num_inputs(m); i++) {
        int64_t dims[EB_MAX_DIMS];
        int nd = eb_model_io_shape(m, 0, i, dims);
        size_t count = 1;
        for (int d = 0; d < nd; d++) count *= (size_t)dims[d];
        printf("input %d '%s' ", i, eb_model_io_name(m, 0, i));
        print_shape(dims, nd);
        float *data = NULL;
        if (i < n_in_files) {
            uint8_t *raw;
            size_t rlen;
            if (read_file(inputs[i], &raw, &rlen) || rlen != count * sizeof(float)) {
                CHECK(0, "input file %s: unreadable or not %zu float32 values", inputs[i], count);
                free(raw);
                continue;
            }
            data = (float *)raw;
            printf(" from %s\n", inputs[i]);
        } else {
            data = (float *)calloc(count ? count : 1, sizeof(float));
            printf(" zeros\n");
        }
        CHECK(data != NULL, "out of memory");
        if (data) {
            st = eb_session_set_input(s, i, data, count);
            CHECK(st == EB_OK, "set_input %d: %s", i, eb_last_error());
        }
        free(data);
    }
    for (int r = 0; r < runs; r++) {
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
    eb_session_free(s);
    eb_model_free(m);
    return summary_and_exit();
}

/* ---- fuzz driver ------------------------------------------------------------------------- */

typedef struct fz_case {
    const char *name;    /* for reports */
    const uint8_t *data;
    size_t len;
} fz_case;

typedef struct fz_opts {
    int timeout;
    int threads;
    int jobs;
    int quiet;
} fz_opts;

/* In the child: run one case and write "<status>\t<phase>\t<message>" to fd. */
static void child_case(const fz_case *c, const fz_opts *o, int fd) {
    alarm((unsigned)o->timeout);
    char out[1024];
    const char *phase = "load";
    eb_model *m = NULL;
    eb_session *s = NULL;
    eb_status st = eb_model_load_memory(c->data, c->len, 0, &m);
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
    snprintf(out, sizeof out, "%d\t%s\t%s", (int)st, phase, msg);
    for (char *q = out; *q; q++)
        if (*q == '\n') *q = ' ';
    eb_session_free(s);
    eb_model_free(m);
    size_t n = strlen(out), w = 0;
    while (w < n) {
        ssize_t k = write(fd, out + w, n - w);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        w += (size_t)k;
    }
    close(fd);
    exit(0); /* exit (not _exit): LeakSanitizer checks for leaks here */
}

typedef struct fz_slot {
    pid_t pid;
    int fd;
    size_t index;
} fz_slot;

/* Turns a finished child's wait status and output into a report line; returns 1 if passed. */
static int judge(const fz_case *c, int wstatus, const char *res, const fz_opts *o, char *line,
                 size_t cap) {
    if (WIFSIGNALED(wstatus)) {
        int sig = WTERMSIG(wstatus);
        if (sig == SIGALRM)
            snprintf(line, cap, "%s: HANG (no result within %d s)", c->name, o->timeout);
        else
            snprintf(line, cap, "%s: CRASH (signal %d, %s)", c->name, sig, strsignal(sig));
        return 0;
    }
    int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    if (res[0] == '\0') {
        snprintf(line, cap, "%s: CRASH (exit code %d without a result; sanitizer report above?)",
                 c->name, code);
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
        snprintf(line, cap, "%s: FAIL (exit code %d at exit, e.g. a leak, after %s at %s)",
                 c->name, code, eb_status_name((eb_status)st), ph);
        return 0;
    }
    if (st < EB_OK || st > EB_ERR_RUNTIME) {
        snprintf(line, cap, "%s: FAIL (unknown status %d)", c->name, st);
        return 0;
    }
    if (st != EB_OK && msg[0] == '\0') {
        snprintf(line, cap, "%s: FAIL (%s at %s with an empty message)", c->name,
                 eb_status_name((eb_status)st), ph);
        return 0;
    }
    if (st == EB_OK)
        snprintf(line, cap, "%s: OK (loaded and ran)", c->name);
    else
        snprintf(line, cap, "%s: %s at %s: %s", c->name, eb_status_name((eb_status)st), ph, msg);
    return 1;
}

static int fuzz_cases(const fz_case *cases, size_t n, const fz_opts *o) {
    enum { LINE = 700 };
    char *lines = (char *)calloc(n ? n : 1, LINE);
    unsigned char *done = (unsigned char *)calloc(n ? n : 1, 1);
    unsigned char *ok = (unsigned char *)calloc(n ? n : 1, 1);
    fz_slot *slots = (fz_slot *)calloc((size_t)o->jobs, sizeof *slots);
    if (!lines || !done || !ok || !slots) {
        fprintf(stderr, "out of memory\n");
        return 2;
    }
    size_t next = 0, printed = 0;
    int running = 0;
    int counts[8] = {0};
    int crashes = 0, hangs = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (next < n || running > 0) {
        while (running < o->jobs && next < n) {
            int p[2];
            if (pipe(p) != 0) {
                perror("pipe");
                return 2;
            }
            fflush(stdout);
            fflush(stderr);
            pid_t pid = fork();
            if (pid < 0) {
                perror("fork");
                return 2;
            }
            if (pid == 0) {
                close(p[0]);
                child_case(&cases[next], o, p[1]);
            }
            close(p[1]);
            for (int k = 0; k < o->jobs; k++)
                if (slots[k].pid == 0) {
                    slots[k].pid = pid;
                    slots[k].fd = p[0];
                    slots[k].index = next;
                    break;
                }
            running++;
            next++;
        }
        int wstatus;
        pid_t pid = waitpid(-1, &wstatus, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            perror("waitpid");
            return 2;
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
        ok[idx] = (unsigned char)judge(&cases[idx], wstatus, res, o, lines + idx * LINE, LINE);
        done[idx] = 1;
        if (WIFSIGNALED(wstatus)) {
            if (WTERMSIG(wstatus) == SIGALRM) hangs++;
            else crashes++;
        } else if (res[0]) {
            int st = atoi(res);
            if (st >= 0 && st < 8) counts[st]++;
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
    free(lines);
    free(done);
    free(ok);
    free(slots);
    return 0;
}

/* Growable list of cases; owns the byte blocks in `blocks`. */
typedef struct case_list {
    fz_case *v;
    size_t n, cap;
    void **blocks;
    size_t nb, capb;
} case_list;

static int push_case(case_list *l, const char *name, const uint8_t *d, size_t len) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        fz_case *nv = (fz_case *)realloc(l->v, nc * sizeof *nv);
        if (!nv) return -1;
        l->v = nv;
        l->cap = nc;
    }
    char *nm = strdup(name);
    if (!nm) return -1;
    l->v[l->n++] = (fz_case){nm, d, len};
    return 0;
}

static int own_block(case_list *l, void *b) {
    if (l->nb == l->capb) {
        size_t nc = l->capb ? l->capb * 2 : 64;
        void **nb = (void **)realloc(l->blocks, nc * sizeof *nb);
        if (!nb) return -1;
        l->blocks = nb;
        l->capb = nc;
    }
    l->blocks[l->nb++] = b;
    return 0;
}

static void free_cases(case_list *l) {
    for (size_t i = 0; i < l->n; i++) free((void *)(uintptr_t)l->v[i].name);
    for (size_t i = 0; i < l->nb; i++) free(l->blocks[i]);
    free(l->v);
    free(l->blocks);
}

static const char CONTAINER_MAGIC[8] = {'E', 'B', 'F', 'Z', 'C', 'A', 'S', '1'};

static int add_file(case_list *l, const char *path) {
    uint8_t *b;
    size_t len;
    if (read_file(path, &b, &len)) {
        fprintf(stderr, "cannot read %s\n", path);
        return -1;
    }
    if (own_block(l, b)) return -1;
    if (len >= 8 && memcmp(b, CONTAINER_MAGIC, 8) == 0) {
        size_t pos = 8, k = 0;
        while (pos + 4 <= len) {
            uint32_t n = (uint32_t)b[pos] | ((uint32_t)b[pos + 1] << 8) |
                         ((uint32_t)b[pos + 2] << 16) | ((uint32_t)b[pos + 3] << 24);
            pos += 4;
            if (n > len - pos) {
                fprintf(stderr, "%s: case %zu is truncated\n", path, k);
                return -1;
            }
            char name[4200];
            snprintf(name, sizeof name, "%s#%zu", path, k++);
            if (push_case(l, name, b + pos, n)) return -1;
            pos += n;
        }
        return 0;
    }
    return push_case(l, path, b, len);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_path(case_list *l, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "cannot stat %s\n", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) return add_file(l, path);
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
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, names[i]);
        struct stat s2;
        if (rc == 0 && stat(p, &s2) == 0 && S_ISREG(s2.st_mode)) rc = add_file(l, p);
        free(names[i]);
    }
    free(names);
    return rc;
}

static int parse_fuzz_opt(int argc, char **argv, int *i, fz_opts *o) {
    if (!strcmp(argv[*i], "-j") && *i + 1 < argc) o->jobs = atoi(argv[++*i]);
    else if (!strcmp(argv[*i], "--timeout") && *i + 1 < argc) o->timeout = atoi(argv[++*i]);
    else if (!strcmp(argv[*i], "--threads") && *i + 1 < argc) o->threads = atoi(argv[++*i]);
    else if (!strcmp(argv[*i], "-q")) o->quiet = 1;
    else return 0;
    if (o->jobs < 1) o->jobs = 1;
    if (o->jobs > 64) o->jobs = 64;
    if (o->timeout < 1) o->timeout = 1;
    return 1;
}

static int run_fuzz(int argc, char **argv) {
    fz_opts o = {10, 1, 1, 0};
    case_list l;
    memset(&l, 0, sizeof l);
    for (int i = 2; i < argc; i++) {
        if (parse_fuzz_opt(argc, argv, &i, &o)) continue;
        if (add_path(&l, argv[i])) {
            free_cases(&l);
            return 2;
        }
    }
    int rc = fuzz_cases(l.v, l.n, &o);
    free_cases(&l);
    if (rc) return rc;
    return summary_and_exit();
}

static int run_mutate(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: edgebrew_test --mutate BUNDLE|builtin COUNT [--seed S] "
                        "[--save DIR] [-j N] [--timeout S] [--threads N] [-q]\n");
        return 2;
    }
    fz_opts o = {10, 1, 1, 0};
    uint64_t seed = 1;
    const char *save = NULL;
    long count = atol(argv[3]);
    for (int i = 4; i < argc; i++) {
        if (parse_fuzz_opt(argc, argv, &i, &o)) continue;
        if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--save") && i + 1 < argc) save = argv[++i];
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
    case_list l;
    memset(&l, 0, sizeof l);
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 1;
    for (long k = 0; k < count; k++) {
        uint8_t *b = (uint8_t *)malloc(base_len ? base_len : 1);
        if (!b || own_block(&l, b)) {
            free(b);
            break;
        }
        memcpy(b, base, base_len);
        size_t len = base_len;
        eb_test_mutate(b, &len, base_len, &rng);
        char name[64];
        snprintf(name, sizeof name, "mutation-%ld", k);
        if (push_case(&l, name, b, len)) break;
        if (save) {
            char p[4200];
            snprintf(p, sizeof p, "%s/%s.brew", save, name);
            FILE *f = fopen(p, "wb");
            if (f) {
                fwrite(b, 1, len, f);
                fclose(f);
            }
        }
    }
    free(base);
    int rc = fuzz_cases(l.v, l.n, &o);
    free_cases(&l);
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
