/* DetectionOutput (SSD fork of Caffe): decode boxes, per-class NMS, keep_top_k.
 *
 * Follows edgebrew/ir/ops/detection.py (DetectionOutput.run, decode_boxes, nms_fast, jaccard,
 * box_sizes) step for step, in float32 with the reference's operation order (exp and the final
 * halving in double, as there), so scores, orders and NMS decisions match it exactly:
 *
 *   inputs  loc (N, P*L*4) (L = 1 when share_location, else num_classes), conf (N,
 *           P*num_classes), prior (B, 2, P*4) (only the first of the B entries is read)
 *   per image, per class c != background_label_id:
 *     candidates: priors with score > confidence_threshold (absent: -FLT_MAX), ordered by
 *     descending score, ties by ascending prior index (= the reference's stable sort), cut to
 *     top_k (when top_k > -1); a candidate is kept when its IoU with every kept box is <= the
 *     threshold; after each keep, threshold *= eta when eta < 1 and threshold > 0.5
 *   when keep_top_k > -1 and the image has more detections: the keep_top_k best by descending
 *   score, ties in (label, NMS) order (= the reference's stable sort) are kept
 *   rows [image, label, score, xmin, ymin, xmax, ymax], by image, then ascending label, then
 *   NMS order. No row in the whole batch: one row [i, -1, -1, -1, -1, -1, -1] per image.
 *
 * The output's declared shape (1, 1, R, 7) is the upper bound of the IR's infer_shapes; run()
 * writes k <= R rows and reports (1, 1, k, 7) with eb_set_output_shape().
 *
 * With a code type other than CORNER, a prior of zero (or NaN) width or height makes the
 * reference raise; run() then returns EB_ERR_RUNTIME and writes nothing.
 *
 * Sorting uses a total order (score descending, then index ascending), so the merge sort's
 * result is the reference's stable sort; when only top_k of many candidates survive, a heap
 * picks them first (same set and order, O(n log top_k)).
 *
 * Scratch (node->scratch_bytes per worker; all in eb_scratch): worker 0's block holds the data
 * shared across the per-class tasks (decoded boxes and their sizes, kept index lists, the
 * keep_top_k sort); every worker's block holds, after that shared part, its private candidate
 * and merge buffers.
 */
#include "ops_common.h"

#include <float.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off") /* keep a*b+c as two roundings, like the reference */
#endif

enum { CODE_CORNER = 0, CODE_CENTER_SIZE = 1, CODE_CORNER_SIZE = 2 };

typedef struct do_params {
    int64_t n, np, nc, nl; /* images, priors, classes, location classes */
    int64_t bg;            /* background label; outside [0, nc): none */
    int64_t top_k, keep_top_k;
    int64_t kc;            /* kept per class, at most: top_k > -1 ? min(top_k, P) : P */
    int64_t max_rows;      /* the output's declared row capacity */
    int code, veit;
    float nms_threshold, eta, conf_threshold;
    /* scratch layout: byte offsets */
    size_t off_boxes, off_sizes, off_kept, off_keptn, off_pscore, off_porder, off_sel;
    size_t off_private; /* per worker: cand (P int32), tmp (P int32) */
    size_t off_tmp;
} do_params;

/* ---- checked int64 arithmetic for prepare() ------------------------------------------------- */
static int mul_ok(int64_t a, int64_t b, int64_t *out) { return !__builtin_mul_overflow(a, b, out); }

/* Appends `bytes` (rounded up to 64) to a layout; returns 0 on overflow. */
static int layout_add(int64_t *total, int64_t bytes, size_t *offset)
{
    int64_t rounded;
    if (bytes < 0 || __builtin_add_overflow(bytes, (int64_t)63, &rounded))
        return 0;
    rounded &= ~(int64_t)63;
    if (offset)
        *offset = (size_t)*total;
    return !__builtin_add_overflow(*total, rounded, total);
}

static eb_status prepare(eb_node *node, eb_error *err)
{
    eb_status st = ebo_check_arity(node, err, 3, 3, 1, 1, 0);
    if (st != EB_OK)
        return st;
    if ((st = ebo_check_float32(node, err)) != EB_OK)
        return st;

    int64_t nc = 0, bg = 0, top_k = -1, keep_top_k = -1;
    int share = 1, veit = 0;
    double nms_raw = 0.3, eta_raw = 1.0, conf_raw = -FLT_MAX;
    const char *code_s = "CORNER";
    if ((st = eb_attr_int(node, "num_classes", 0, &nc, err)) != EB_OK ||
        (st = ebo_attr_bool(node, "share_location", 1, &share, err)) != EB_OK ||
        (st = eb_attr_int(node, "background_label_id", 0, &bg, err)) != EB_OK ||
        (st = eb_attr_float(node, "nms_threshold", 0.3, &nms_raw, err)) != EB_OK ||
        (st = eb_attr_int(node, "top_k", -1, &top_k, err)) != EB_OK ||
        (st = eb_attr_float(node, "eta", 1.0, &eta_raw, err)) != EB_OK ||
        (st = eb_attr_string(node, "code_type", "CORNER", &code_s, err)) != EB_OK ||
        (st = ebo_attr_bool(node, "variance_encoded_in_target", 0, &veit, err)) != EB_OK ||
        (st = eb_attr_int(node, "keep_top_k", -1, &keep_top_k, err)) != EB_OK ||
        (st = eb_attr_float(node, "confidence_threshold", -FLT_MAX, &conf_raw, err)) != EB_OK)
        return st;
    if (!eb_attr_has(node, "num_classes"))
        return eb_node_fail(node, err, EBO_INVALID, "attribute 'num_classes' is required");

    /* ---- attributes (the checks of DetectionOutput._geometry) ---- */
    if (nc < 1)
        return eb_node_fail(node, err, EBO_INVALID, "num_classes %lld must be at least 1",
                            (long long)nc);
    int code;
    if (strcmp(code_s, "CORNER") == 0)
        code = CODE_CORNER;
    else if (strcmp(code_s, "CENTER_SIZE") == 0)
        code = CODE_CENTER_SIZE;
    else if (strcmp(code_s, "CORNER_SIZE") == 0)
        code = CODE_CORNER_SIZE;
    else
        return eb_node_fail(node, err, EBO_INVALID,
                            "unknown code_type '%.64s' (CORNER, CENTER_SIZE or CORNER_SIZE)",
                            code_s);
    if (nms_raw < 0)
        return eb_node_fail(node, err, EBO_INVALID, "nms_threshold %g must not be negative",
                            nms_raw);
    if (!(eta_raw > 0 && eta_raw <= 1))
        return eb_node_fail(node, err, EBO_INVALID, "eta %g must be in (0, 1]", eta_raw);

    /* ---- shapes ---- */
    const eb_tensor *loc = node->inputs[0], *conf = node->inputs[1], *prior = node->inputs[2];
    if (prior->ndim != 3 || prior->dims[1] != 2 || prior->dims[2] % 4 != 0)
        return eb_node_fail(node, err, EBO_INVALID,
                            "prior input '%s' must be (1, 2, num_priors*4)", prior->name);
    const int64_t np = prior->dims[2] / 4; /* >= 1: dims are >= 1 */
    const int64_t nl = share ? 1 : nc;
    /* Indices are int32 in scratch: P * num_classes (one image's scores) must fit. */
    int64_t per_image_scores;
    if (!mul_ok(np, nc, &per_image_scores) || per_image_scores > INT32_MAX)
        return eb_node_fail(node, err, EB_ERR_UNSUPPORTED,
                            "%lld priors x %lld classes is more than this runtime handles",
                            (long long)np, (long long)nc);
    for (int which = 0; which < 2; which++) {
        const eb_tensor *t = which ? conf : loc;
        const int64_t want = which ? np * nc : np * nl * 4; /* nl <= nc: no overflow */
        if (t->ndim < 2 || t->dims[1] != want || ebo_count(t->dims, 1, t->ndim) != want)
            return eb_node_fail(node, err, EBO_INVALID,
                                "%s input '%s' must be (N, %lld) for %lld priors and %lld "
                                "classes", which ? "conf" : "loc", t->name, (long long)want,
                                (long long)np, (long long)nc);
    }
    if (conf->dims[0] != loc->dims[0])
        return eb_node_fail(node, err, EBO_INVALID, "loc has %lld images, conf has %lld",
                            (long long)loc->dims[0], (long long)conf->dims[0]);
    const int64_t n = loc->dims[0];

    /* ---- row bound, as DetectionOutput.max_rows ---- */
    const int64_t classes = nc - ((bg >= 0 && bg < nc) ? 1 : 0);
    const int64_t kc = top_k < 0 ? np : (top_k < np ? top_k : np);
    int64_t per_image = classes * kc; /* <= nc * P <= INT32_MAX */
    if (keep_top_k > -1 && keep_top_k < per_image)
        per_image = keep_top_k;
    int64_t rows;
    if (!mul_ok(n, per_image, &rows))
        rows = INT64_MAX;
    if (rows < n)
        rows = n;
    const eb_tensor *out = node->outputs[0];
    if (out->ndim != 4 || out->dims[0] != 1 || out->dims[1] != 1 || out->dims[3] != 7 ||
        out->dims[2] < rows) {
        char got[200];
        return eb_node_fail(node, err, EBO_INVALID,
                            "output '%s' has shape %s; needs (1, 1, R, 7) with R >= %lld rows",
                            out->name, ebo_shape_str(got, sizeof got, out->ndim, out->dims),
                            (long long)rows);
    }

    /* ---- scratch layout ---- */
    do_params *p = calloc(1, sizeof *p);
    if (!p)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    p->n = n;
    p->np = np;
    p->nc = nc;
    p->nl = nl;
    p->bg = bg;
    p->top_k = top_k;
    p->keep_top_k = keep_top_k;
    p->kc = kc;
    p->max_rows = out->dims[2];
    p->code = code;
    p->veit = veit;
    p->nms_threshold = (float)nms_raw;
    p->eta = (float)eta_raw;
    p->conf_threshold = (float)conf_raw;

    /* All products below are bounded by nc * P * 16 <= 2^35: no overflow, checked anyway. */
    int64_t total = 0, pairs = nc * kc;
    int ok = layout_add(&total, nl * np * 4 * (int64_t)sizeof(float), &p->off_boxes) &&
             layout_add(&total, nl * np * (int64_t)sizeof(float), &p->off_sizes) &&
             layout_add(&total, pairs * (int64_t)sizeof(int32_t), &p->off_kept) &&
             layout_add(&total, nc * (int64_t)sizeof(int64_t), &p->off_keptn);
    if (ok && keep_top_k > -1)
        ok = layout_add(&total, pairs * (int64_t)sizeof(float), &p->off_pscore) &&
             layout_add(&total, pairs * (int64_t)sizeof(int32_t), &p->off_porder) &&
             layout_add(&total, pairs, &p->off_sel);
    ok = ok && layout_add(&total, np * (int64_t)sizeof(int32_t), &p->off_private) &&
         layout_add(&total, np * (int64_t)sizeof(int32_t), &p->off_tmp);
    if (!ok || (uint64_t)total > (uint64_t)SIZE_MAX) {
        free(p);
        return eb_node_fail(node, err, EB_ERR_UNSUPPORTED,
                            "needs more scratch memory than this platform can address");
    }
    node->params = p;
    node->scratch_bytes = (size_t)total;
    return EB_OK;
}

/* ---- decoding (decode_boxes) ------------------------------------------------------------------ */
static void decode_box(const float *pb, const float *pv, const float *l, int code, int veit,
                       float *o)
{
    if (code == CODE_CORNER) {
        for (int k = 0; k < 4; k++) {
            if (veit) {
                o[k] = pb[k] + l[k];
            } else {
                float d = pv[k] * l[k];
                o[k] = pb[k] + d;
            }
        }
        return;
    }
    const float pw = pb[2] - pb[0], ph = pb[3] - pb[1];
    if (code == CODE_CORNER_SIZE) {
        const float side[4] = {pw, ph, pw, ph};
        for (int k = 0; k < 4; k++) {
            float d;
            if (veit) {
                d = l[k] * side[k];
            } else {
                float vl = pv[k] * l[k];
                d = vl * side[k];
            }
            o[k] = pb[k] + d;
        }
        return;
    }
    /* CENTER_SIZE */
    const float pcx = (pb[0] + pb[2]) / 2.0f, pcy = (pb[1] + pb[3]) / 2.0f;
    float cx, cy, ew, eh;
    if (veit) {
        float dx = l[0] * pw, dy = l[1] * ph;
        cx = dx + pcx;
        cy = dy + pcy;
        ew = l[2];
        eh = l[3];
    } else {
        float vx = pv[0] * l[0], vy = pv[1] * l[1];
        float dx = vx * pw, dy = vy * ph;
        cx = dx + pcx;
        cy = dy + pcy;
        ew = pv[2] * l[2];
        eh = pv[3] * l[3];
    }
    const float w = (float)(exp((double)ew) * (double)pw);
    const float h = (float)(exp((double)eh) * (double)ph);
    const double hw = (double)w / 2.0, hh = (double)h / 2.0;
    o[0] = (float)((double)cx - hw);
    o[1] = (float)((double)cy - hh);
    o[2] = (float)((double)cx + hw);
    o[3] = (float)((double)cy + hh);
}

/* box_sizes: 0 for a box with xmax < xmin or ymax < ymin. */
static inline float box_size(const float *b)
{
    const float w = b[2] - b[0], h = b[3] - b[1];
    return (w < 0 || h < 0) ? 0.0f : w * h;
}

/* NumPy's minimum/maximum: NaN if either is NaN. */
static inline float np_min(float a, float b) { return (a <= b || a != a) ? a : b; }
static inline float np_max(float a, float b) { return (a >= b || a != a) ? a : b; }

/* jaccard for one pair: box a (the candidate) against kept box b. */
static inline float jaccard(const float *a, float size_a, const float *b, float size_b)
{
    const float iw = np_min(a[2], b[2]) - np_max(a[0], b[0]);
    const float ih = np_min(a[3], b[3]) - np_max(a[1], b[1]);
    if (!(iw > 0 && ih > 0))
        return 0.0f;
    const float inter = iw * ih;
    const float sum = size_a + size_b;
    const float uni = sum - inter;
    return inter / uni;
}

/* ---- sorting ------------------------------------------------------------------------------ */
/* Scores of index i: key[i * stride]. "a before b": higher score, or equal score and lower
 * index. A total order on non-NaN scores (candidates never hold NaN: NaN > t is false). */
typedef struct sort_key {
    const float *key;
    int64_t stride;
} sort_key;

static inline int before(const sort_key *k, int32_t a, int32_t b)
{
    const float sa = k->key[(int64_t)a * k->stride], sb = k->key[(int64_t)b * k->stride];
    return sa > sb || (sa == sb && a < b);
}

/* Sorts idx[0..n) with `before`; tmp holds n entries. Bottom-up merge sort over runs that
 * insertion sort first builds. */
#define SORT_RUN 16
static void merge_sort(const sort_key *k, int32_t *idx, int32_t *tmp, int64_t n)
{
    for (int64_t s = 0; s < n; s += SORT_RUN) {
        const int64_t e = s + SORT_RUN < n ? s + SORT_RUN : n;
        for (int64_t i = s + 1; i < e; i++) {
            const int32_t v = idx[i];
            int64_t j = i;
            while (j > s && before(k, v, idx[j - 1])) {
                idx[j] = idx[j - 1];
                j--;
            }
            idx[j] = v;
        }
    }
    int32_t *src = idx, *dst = tmp;
    for (int64_t width = SORT_RUN; width < n; width *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * width) {
            const int64_t mid = lo + width < n ? lo + width : n;
            const int64_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            int64_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi)
                dst[o++] = before(k, src[j], src[i]) ? src[j++] : src[i++];
            while (i < mid)
                dst[o++] = src[i++];
            while (j < hi)
                dst[o++] = src[j++];
        }
        int32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != idx)
        memcpy(idx, src, (size_t)n * sizeof *idx);
}

/* Keeps in idx[0..k) the k entries of idx[0..n) that come first in `before` order (unordered).
 * A heap whose root is the last of the k kept so far. */
static void select_first(const sort_key *key, int32_t *idx, int64_t n, int64_t k)
{
    /* sift-down for a heap where every parent comes *after* its children in `before` order */
#define SIFT(start)                                                                              \
    do {                                                                                         \
        int64_t r_ = (start);                                                                    \
        for (;;) {                                                                               \
            int64_t c_ = 2 * r_ + 1, w_ = r_;                                                    \
            if (c_ < k && before(key, idx[w_], idx[c_]))                                         \
                w_ = c_;                                                                         \
            if (c_ + 1 < k && before(key, idx[w_], idx[c_ + 1]))                                 \
                w_ = c_ + 1;                                                                     \
            if (w_ == r_)                                                                        \
                break;                                                                           \
            int32_t t_ = idx[r_];                                                                \
            idx[r_] = idx[w_];                                                                   \
            idx[w_] = t_;                                                                        \
            r_ = w_;                                                                             \
        }                                                                                        \
    } while (0)
    if (k <= 0)
        return;
    for (int64_t r = k / 2 - 1; r >= 0; r--)
        SIFT(r);
    for (int64_t i = k; i < n; i++) {
        if (before(key, idx[i], idx[0])) {
            idx[0] = idx[i];
            SIFT(0);
        }
    }
#undef SIFT
}

/* ---- run ---------------------------------------------------------------------------------- */
typedef struct do_ctx {
    const do_params *p;
    eb_exec *ex;
    const float *loc, *conf, *prior; /* loc and conf of the current image */
    float *boxes, *sizes;            /* (nl, P, 4), (nl, P) */
    int32_t *kept;                   /* (nc, kc) */
    int64_t *keptn;                  /* (nc) */
} do_ctx;

/* Decodes items [begin, end) of (location class, prior). */
static void decode_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const do_ctx *k = vctx;
    const do_params *p = k->p;
    const float *pboxes = k->prior, *pvars = k->prior + p->np * 4;
    for (int64_t it = begin; it < end; it++) {
        const int64_t c = it / p->np, j = it % p->np;
        if (p->nl > 1 && c == p->bg)
            continue; /* the reference does not decode the background's locations */
        float *b = k->boxes + it * 4;
        decode_box(pboxes + j * 4, pvars + j * 4, k->loc + (j * p->nl + c) * 4, p->code, p->veit,
                   b);
        k->sizes[it] = box_size(b);
    }
}

/* NMS for classes [begin, end): nms_fast. */
static void nms_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const do_ctx *k = vctx;
    const do_params *p = k->p;
    char *priv = eb_scratch(k->ex, thread);
    int32_t *cand = (int32_t *)(void *)(priv + p->off_private);
    int32_t *tmp = (int32_t *)(void *)(priv + p->off_tmp);
    for (int64_t c = begin; c < end; c++) {
        if (c == p->bg) {
            k->keptn[c] = 0;
            continue;
        }
        const sort_key key = {k->conf + c, p->nc};
        int64_t m = 0;
        for (int64_t j = 0; j < p->np; j++)
            if (k->conf[j * p->nc + c] > p->conf_threshold)
                cand[m++] = (int32_t)j;
        if (p->top_k > -1 && m > p->top_k) {
            select_first(&key, cand, m, p->top_k);
            m = p->top_k;
        }
        merge_sort(&key, cand, tmp, m);

        const int64_t lc = p->nl == 1 ? 0 : c;
        const float *boxes = k->boxes + lc * p->np * 4;
        const float *sizes = k->sizes + lc * p->np;
        int32_t *kept = k->kept + c * p->kc;
        int64_t nk = 0;
        float threshold = p->nms_threshold;
        for (int64_t r = 0; r < m; r++) {
            const int32_t idx = cand[r];
            const float *b = boxes + (int64_t)idx * 4;
            int keep = 1;
            for (int64_t q = 0; q < nk; q++) {
                const int32_t o = kept[q];
                const float ov = jaccard(b, sizes[idx], boxes + (int64_t)o * 4, sizes[o]);
                if (!(ov <= threshold)) {
                    keep = 0;
                    break;
                }
            }
            if (keep) {
                kept[nk++] = idx; /* nk <= m <= kc */
                if (p->eta < 1.0f && threshold > 0.5f)
                    threshold = threshold * p->eta;
            }
        }
        k->keptn[c] = nk;
    }
}

static eb_status run(const eb_node *node, eb_exec *ex)
{
    const do_params *p = node->params;
    const float *loc = eb_data(ex, node->inputs[0]);
    const float *conf = eb_data(ex, node->inputs[1]);
    const float *prior = eb_data(ex, node->inputs[2]);
    float *out = eb_data(ex, node->outputs[0]);
    char *scratch = eb_scratch(ex, 0);
    const int64_t np = p->np, nc = p->nc;

    if (p->code != CODE_CORNER) {
        for (int64_t j = 0; j < np; j++) {
            const float *b = prior + j * 4;
            const float w = b[2] - b[0], h = b[3] - b[1];
            if (!(w > 0 && h > 0)) {
                eb_exec_fail(ex, "prior box %lld has no width or height, which "
                             "CENTER_SIZE/CORNER_SIZE decoding divides by", (long long)j);
                return EB_ERR_RUNTIME; /* the reference raises too */
            }
        }
    }

    do_ctx k = {p, ex, NULL, NULL, prior,
                (float *)(void *)(scratch + p->off_boxes),
                (float *)(void *)(scratch + p->off_sizes),
                (int32_t *)(void *)(scratch + p->off_kept),
                (int64_t *)(void *)(scratch + p->off_keptn)};
    int64_t rows = 0;
    for (int64_t i = 0; i < p->n; i++) {
        k.loc = loc + i * np * p->nl * 4;
        k.conf = conf + i * np * nc;
        ebo_parallel(ex, p->nl * np, 40, decode_range, &k);
        ebo_parallel(ex, nc, np * 4 + p->kc * 8, nms_range, &k);

        int64_t num_det = 0;
        for (int64_t c = 0; c < nc; c++)
            num_det += k.keptn[c];
        const unsigned char *sel = NULL; /* keep_top_k: which (label, NMS) pairs survive */
        if (p->keep_top_k > -1 && num_det > p->keep_top_k) {
            float *pscore = (float *)(void *)(scratch + p->off_pscore);
            int32_t *porder = (int32_t *)(void *)(scratch + p->off_porder);
            unsigned char *flags = (unsigned char *)(scratch + p->off_sel);
            int64_t q = 0;
            for (int64_t c = 0; c < nc; c++)
                for (int64_t r = 0; r < k.keptn[c]; r++, q++) {
                    pscore[q] = k.conf[(int64_t)k.kept[c * p->kc + r] * nc + c];
                    porder[q] = (int32_t)q;
                }
            const sort_key key = {pscore, 1};
            select_first(&key, porder, num_det, p->keep_top_k);
            memset(flags, 0, (size_t)num_det);
            for (int64_t r = 0; r < p->keep_top_k; r++)
                flags[porder[r]] = 1;
            sel = flags;
            num_det = p->keep_top_k;
        }
        if (rows + num_det > p->max_rows)
            return EB_ERR_RUNTIME; /* cannot happen: prepare checked the bound */
        int64_t q = 0;
        for (int64_t c = 0; c < nc; c++) {
            const float *boxes = k.boxes + (p->nl == 1 ? 0 : c) * np * 4;
            for (int64_t r = 0; r < k.keptn[c]; r++, q++) {
                if (sel && !sel[q])
                    continue;
                const int64_t j = k.kept[c * p->kc + r];
                float *o = out + rows * 7;
                o[0] = (float)i;
                o[1] = (float)c;
                o[2] = k.conf[j * nc + c];
                memcpy(o + 3, boxes + j * 4, 4 * sizeof(float));
                rows++;
            }
        }
    }
    if (rows == 0) {
        for (int64_t i = 0; i < p->n; i++) { /* n <= max_rows (prepare) */
            float *o = out + i * 7;
            o[0] = (float)i;
            for (int t = 1; t < 7; t++)
                o[t] = -1.0f;
        }
        rows = p->n;
    }
    const int64_t dims[4] = {1, 1, rows, 7};
    eb_set_output_shape(ex, node, 0, 4, dims);
    return EB_OK;
}

const eb_op_kernel eb_kernel_DetectionOutput = {"DetectionOutput", prepare, run};
