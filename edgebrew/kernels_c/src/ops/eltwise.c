/* Eltwise, as edgebrew/ir/ops/tensor_ops.py (Caffe's EltwiseLayer):
 *
 *   SUM:  y = 0 + c0*x0 + c1*x1 + ...   in input order (coeff empty: all 1; coeff is SUM-only,
 *         one per input), each coefficient rounded to float32
 *   PROD: y = x0 * x1 * x2 ...          in input order
 *   MAX:  y = x0 > x1 ? x0 : x1, then y = xk > y ? xk : y   (earlier value kept unless a later
 *         one is strictly greater)
 *
 * All inputs and the output have input 0's shape. The values of each block are computed in a
 * local buffer and then stored, so the output may share memory with any input (in place).
 */
#include <limits.h>

#include "fused_activation.h"
#include "ops_common.h"

enum { ELT_PROD = 0, ELT_SUM = 1, ELT_MAX = 2 };

#define ELT_BLOCK 1024

typedef struct elt_params {
    int op;
    int n;
    ebo_fused_act act;        /* fused activation (optimizer's Eltwise + ReLU) */
    int64_t channels, inner;  /* axis 1 and the values per channel, for a fused PReLU */
    float coeff[]; /* n values (SUM) */
} elt_params;

typedef struct elt_ctx {
    const elt_params *p;
    const eb_node *node;
    eb_exec *ex;
    float *y;
} elt_ctx;

static void elt_sum_first(float *restrict acc, const float *restrict x, int64_t n, float c)
{
    for (int64_t i = 0; i < n; i++)
        acc[i] = 0.0f + c * x[i];
}

static void elt_sum_next(float *restrict acc, const float *restrict x, int64_t n, float c)
{
    for (int64_t i = 0; i < n; i++)
        acc[i] = acc[i] + c * x[i];
}

static void elt_prod_first(float *restrict acc, const float *restrict a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        acc[i] = a[i] * b[i];
}

static void elt_prod_next(float *restrict acc, const float *restrict x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        acc[i] = acc[i] * x[i];
}

static void elt_max_first(float *restrict acc, const float *restrict a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        acc[i] = a[i] > b[i] ? a[i] : b[i];
}

static void elt_max_next(float *restrict acc, const float *restrict x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        acc[i] = x[i] > acc[i] ? x[i] : acc[i];
}

static void elt_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const elt_ctx *c = (const elt_ctx *)vctx;
    const elt_params *p = c->p;
    float acc[ELT_BLOCK];
    (void)thread;
    for (int64_t j0 = begin; j0 < end; j0 += ELT_BLOCK) {
        const int64_t n = end - j0 < ELT_BLOCK ? end - j0 : ELT_BLOCK;
        const float *x0 = eb_data(c->ex, c->node->inputs[0]) + j0;
        const float *x1 = eb_data(c->ex, c->node->inputs[1]) + j0;
        int k;
        switch (p->op) {
        case ELT_SUM:
            elt_sum_first(acc, x0, n, p->coeff[0]);
            for (k = 1; k < p->n; k++)
                elt_sum_next(acc, eb_data(c->ex, c->node->inputs[k]) + j0, n, p->coeff[k]);
            break;
        case ELT_PROD:
            elt_prod_first(acc, x0, x1, n);
            for (k = 2; k < p->n; k++)
                elt_prod_next(acc, eb_data(c->ex, c->node->inputs[k]) + j0, n);
            break;
        default:
            elt_max_first(acc, x0, x1, n);
            for (k = 2; k < p->n; k++)
                elt_max_next(acc, eb_data(c->ex, c->node->inputs[k]) + j0, n);
            break;
        }
        ebo_fused_act_apply_flat(&p->act, acc, j0, n, p->channels, p->inner);
        memcpy(c->y + j0, acc, (size_t)n * sizeof(float));
    }
}

static eb_status elt_run(const eb_node *node, eb_exec *ex)
{
    elt_ctx c;
    c.p = (const elt_params *)node->params;
    c.node = node;
    c.ex = ex;
    c.y = eb_data(ex, node->outputs[0]);
    ebo_parallel(ex, node->inputs[0]->count, c.p->n, elt_range, &c);
    return EB_OK;
}

static eb_status elt_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    const char *opname = NULL;
    int op;
    const int extra = ebo_fused_act_extra_weights(node);
    if ((st = ebo_check_arity(node, err, 2, INT_MAX, 1, 1, extra > 0 ? 1 : 0)) != EB_OK ||
        (st = ebo_check_float32(node, err)) != EB_OK ||
        (st = eb_attr_string(node, "operation", "SUM", &opname, err)) != EB_OK)
        return st;
    if (strcmp(opname, "SUM") == 0)
        op = ELT_SUM;
    else if (strcmp(opname, "PROD") == 0)
        op = ELT_PROD;
    else if (strcmp(opname, "MAX") == 0)
        op = ELT_MAX;
    else
        return eb_node_fail(node, err, EBO_INVALID, "unknown operation '%.64s'", opname);
    const eb_tensor *first = node->inputs[0];
    for (int i = 1; i < node->n_inputs; i++)
        if ((st = ebo_expect_shape(node, err, node->inputs[i], "input", i, first->ndim,
                                   first->dims)) != EB_OK)
            return st;
    if ((st = ebo_outputs_like_input(node, err)) != EB_OK)
        return st;

    const int n = node->n_inputs;
    elt_params *p = (elt_params *)malloc(sizeof(elt_params) + (size_t)n * sizeof(float));
    double *coeff = (double *)malloc((size_t)(n + 1) * sizeof(double));
    if (!p || !coeff) {
        free(p);
        free(coeff);
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    }
    int n_coeff = 0;
    /* room for one more than valid, so a count one too many gets our message */
    st = eb_attr_floats(node, "coeff", coeff, n + 1, &n_coeff, err);
    if (st == EB_OK && n_coeff && op != ELT_SUM)
        st = eb_node_fail(node, err, EBO_INVALID, "coeff is only allowed with operation SUM");
    if (st == EB_OK && n_coeff != 0 && n_coeff != n)
        st = eb_node_fail(node, err, EBO_INVALID,
                          "%d coeff(s) for %d inputs (give one per input, or none)", n_coeff, n);
    if (st != EB_OK) {
        free(p);
        free(coeff);
        return st;
    }
    p->op = op;
    p->n = n;
    p->channels = first->ndim >= 2 ? first->dims[1] : 1;
    p->inner = first->ndim >= 2 ? ebo_count(first->dims, 2, first->ndim) : 1;
    if ((st = ebo_fused_act_prepare(node, err, p->channels, &p->act)) != EB_OK) {
        free(p);
        free(coeff);
        return st;
    }
    for (int i = 0; i < n; i++)
        p->coeff[i] = n_coeff ? (float)coeff[i] : 1.0f;
    free(coeff);
    node->params = p;
    node->scratch_bytes = 0;
    return EB_OK;
}

const eb_op_kernel eb_kernel_Eltwise = {"Eltwise", elt_prepare, elt_run};
