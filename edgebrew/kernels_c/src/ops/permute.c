/* Permute (SSD fork), as edgebrew/ir/ops/tensor_ops.py: `order` lists the leading output axes
 * (each in [0, ndim), no repeats); the axes it does not name follow in input order.
 * out.shape[k] = in.shape[order[k]]. Exact copy.
 *
 * Unit axes are dropped first, and the identity permutation is a plain copy. When the last
 * output axis is the input's last axis, output rows are contiguous copies (walked with an
 * odometer). Otherwise rows are strided gathers, done in tiles: PERM_TILE output rows that
 * differ only in the axis q holding the input's last axis read neighbouring input values, so
 * each input cache line fetched serves PERM_TILE rows (e.g. NCHW -> NHWC).
 */
#include "ops_common.h"

typedef struct perm_params {
    int ndim;                      /* after dropping unit axes (>= 1) */
    int64_t out_dims[EB_MAX_DIMS];
    int64_t src_strides[EB_MAX_DIMS]; /* input stride of each output axis */
    int64_t out_strides[EB_MAX_DIMS];
    int64_t rows, count;
    int q;                         /* tiled path: output axis with input stride 1, else -1 */
    int64_t nblk, items;           /* tiled path: tiles along q; parallel items */
} perm_params;

#define PERM_TILE 16

typedef struct perm_ctx {
    const perm_params *p;
    const float *x;
    float *y;
} perm_ctx;

static void gather(const float *restrict x, float *restrict y, int64_t n, int64_t stride)
{
    for (int64_t j = 0; j < n; j++)
        y[j] = x[j * stride];
}

/* Item = (every output axis but q and the last, a tile of PERM_TILE values along q). */
static void perm_tiles(const perm_ctx *c, int64_t begin, int64_t end)
{
    const perm_params *p = c->p;
    const int nd = p->ndim, q = p->q;
    const int64_t len = p->out_dims[nd - 1], st = p->src_strides[nd - 1];
    for (int64_t it = begin; it < end; it++) {
        int64_t g = it / p->nblk, kb = it - g * p->nblk;
        int64_t src = 0, dst = 0;
        for (int a = nd - 2; a >= 0; a--) {
            if (a == q)
                continue;
            int64_t i = g % p->out_dims[a];
            g /= p->out_dims[a];
            src += i * p->src_strides[a];
            dst += i * p->out_strides[a];
        }
        int64_t k0 = kb * PERM_TILE, nb = p->out_dims[q] - k0;
        if (nb > PERM_TILE)
            nb = PERM_TILE;
        src += k0; /* q's input stride is 1 */
        dst += k0 * p->out_strides[q];
        for (int64_t b = 0; b < nb; b++)
            gather(c->x + src + b, c->y + dst + b * p->out_strides[q], len, st);
    }
}

static void perm_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const perm_ctx *c = (const perm_ctx *)vctx;
    const perm_params *p = c->p;
    if (p->q >= 0) {
        perm_tiles(c, begin, end);
        return;
    }
    const int nd = p->ndim;
    const int64_t len = p->out_dims[nd - 1], st = p->src_strides[nd - 1];
    int64_t idx[EB_MAX_DIMS];
    (void)thread;
    int64_t r = begin, src = 0;
    for (int a = nd - 2; a >= 0; a--) {
        idx[a] = r % p->out_dims[a];
        r /= p->out_dims[a];
        src += idx[a] * p->src_strides[a];
    }
    for (int64_t row = begin; row < end; row++) {
        if (st == 1)
            memcpy(c->y + row * len, c->x + src, (size_t)len * sizeof(float));
        else
            gather(c->x + src, c->y + row * len, len, st);
        for (int a = nd - 2; a >= 0; a--) {
            src += p->src_strides[a];
            if (++idx[a] < p->out_dims[a])
                break;
            src -= idx[a] * p->src_strides[a];
            idx[a] = 0;
        }
    }
}

static eb_status perm_run(const eb_node *node, eb_exec *ex)
{
    perm_ctx c;
    c.p = (const perm_params *)node->params;
    c.x = eb_data(ex, node->inputs[0]);
    c.y = eb_data(ex, node->outputs[0]);
    ebo_parallel(ex, c.p->items, c.p->count / c.p->items + 8, perm_range, &c);
    return EB_OK;
}

static eb_status perm_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    int64_t order[EB_MAX_DIMS];
    int n_order = 0;
    if ((st = ebo_check_arity(node, err, 1, 1, 1, 1, 0)) != EB_OK ||
        (st = ebo_check_float32(node, err)) != EB_OK ||
        (st = eb_attr_ints(node, "order", order, EB_MAX_DIMS, &n_order, err)) != EB_OK)
        return st;
    const eb_tensor *x = node->inputs[0];
    const int n = x->ndim;
    int full[EB_MAX_DIMS], used[EB_MAX_DIMS] = {0}, k = 0;
    for (int i = 0; i < n_order; i++) {
        int64_t o = order[i];
        if (o < 0 || o >= n)
            return eb_node_fail(node, err, EBO_INVALID,
                                "order names axis %lld, the input has %d axes", (long long)o, n);
        if (used[o])
            return eb_node_fail(node, err, EBO_INVALID, "order repeats axis %lld", (long long)o);
        used[o] = 1;
        full[k++] = (int)o;
    }
    for (int i = 0; i < n; i++)
        if (!used[i])
            full[k++] = i;
    int64_t in_strides[EB_MAX_DIMS], out_dims[EB_MAX_DIMS], stride = 1;
    for (int i = n - 1; i >= 0; i--) {
        in_strides[i] = stride;
        stride *= x->dims[i];
    }
    for (int i = 0; i < n; i++)
        out_dims[i] = x->dims[full[i]];
    if ((st = ebo_expect_shape(node, err, node->outputs[0], "output", 0, n, out_dims)) != EB_OK)
        return st;

    perm_params p;
    memset(&p, 0, sizeof p);
    int identity = 1;
    for (int i = 0; i < n; i++) {
        if (out_dims[i] == 1)
            continue; /* a unit axis moves nothing */
        p.out_dims[p.ndim] = out_dims[i];
        p.src_strides[p.ndim] = in_strides[full[i]];
        if (p.ndim > 0 && p.src_strides[p.ndim] > p.src_strides[p.ndim - 1])
            identity = 0;
        p.ndim++;
    }
    if (p.ndim == 0 || identity) { /* same memory order: one contiguous row */
        p.ndim = 1;
        p.out_dims[0] = x->count;
        p.src_strides[0] = 1;
    }
    p.count = x->count;
    p.rows = x->count / p.out_dims[p.ndim - 1];
    p.q = -1;
    p.items = p.rows;
    int64_t ostride = 1;
    for (int i = p.ndim - 1; i >= 0; i--) {
        p.out_strides[i] = ostride;
        ostride *= p.out_dims[i];
        if (p.src_strides[i] == 1 && i < p.ndim - 1)
            p.q = i;
    }
    if (p.q >= 0) {
        p.nblk = (p.out_dims[p.q] + PERM_TILE - 1) / PERM_TILE;
        p.items = p.rows / p.out_dims[p.q] * p.nblk;
    }
    perm_params *out = (perm_params *)malloc(sizeof *out);
    if (!out)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    *out = p;
    node->params = out;
    node->scratch_bytes = 0;
    return EB_OK;
}

const eb_op_kernel eb_kernel_Permute = {"Permute", perm_prepare, perm_run};
