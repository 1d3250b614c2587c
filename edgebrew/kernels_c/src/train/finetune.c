/* The fine-tuning job (eb_finetune_* in edgebrew.h): Caffe's "learn the last layer first".
 *
 * The trainable layer is an InnerProduct (axis 1) or a 1x1 Convolution (stride 1, no padding,
 * one group). Everything before it is the frozen trunk: eb_finetune_features runs the model's
 * ops up to the layer (a session of eb_session_run_ops) and copies the layer's input, so the
 * trunk may be anything the runtime runs. Per sample the layer computes
 * Y[n, s] = sum_c W[n, c] X[c, s] + b[n] (S = 1 for an InnerProduct), the loss is Caffe's
 * SoftmaxWithLoss over the channels (or EuclideanLoss), and the solver is solver.c.
 *
 * A new num_output changes the shapes of W, b, the layer's output and the outputs of the
 * shape-preserving ops after it (Softmax, activations, Dropout, Split); those activations get
 * new slots at the end of the arena when they grow. The tuned bundle is written by
 * bundle_writer.c, verified by loading it, and saved atomically.
 *
 * Precision. The layer trains in float32 whatever the bundle stores:
 * - fp16 weights (widened to float32 at load) are trained as float32 and saved as float16
 *   again (round to nearest even; a blob with a value beyond 65504 is saved as float32, as the
 *   converter's to_fp16 decides);
 * - an int8 layer (INT8 input and output activations, per tensor; INT8 per-channel weights;
 *   INT32 bias) starts from its dequantized weights (W = q * scale_c, b = q_b * s_in * scale_c),
 *   trains on the dequantized features (s_in * (q - zp_in)) and is re-quantized on save exactly
 *   as the converter quantizes (quant.c); the input and output activations keep their
 *   quantization (the calibration). With a new num_output the output keeps the old head's
 *   calibrated range.
 * eb_finetune_evaluate runs the head as the saved bundle will: for int8 the re-quantized
 * weights in the int8 kernels' integer arithmetic, its output dequantized; for fp16 the
 * weights rounded to float16.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "kernels/fixed_point.h"
#include "kernels/half.h"
#include "train.h"

struct eb_finetune {
    const eb_model *model;
    eb_session *session;
    eb_finetune_options opt;
    char **labels;
    int n_labels;
    int replace_labels;

    int node_index;
    const eb_node *node;
    int is_conv, transpose;
    const eb_tensor *feat;
    int64_t batch;            /* the model input's (and the feature tensor's) first dim */
    int64_t kdim, spatial;    /* W is N x kdim; features per sample = kdim x spatial */
    int64_t n_out, n_out_orig;
    int has_bias;
    int precision;            /* how the layer is stored: EB_FLOAT32, EB_FLOAT16 or EB_INT8 */
    int blob_dtype[2];        /* stored dtype of W and b (an fp16 bundle may keep one float32) */
    float s_in, s_out;        /* int8: the input / output activations' quantization (kept) */
    int32_t zp_in, zp_out;
    int bias_quant;           /* int8: the INT32 bias has a Tensor.quant (dropped on save) */

    eb_param params[2];
    int n_params;
    int64_t iter, current_step;
    double *scores, *grad;    /* per-pass work: batch x N x S */
    size_t work_rows;
    float *feat_work;

    /* the rewrite */
    uint8_t *changed;
    int64_t (*new_dims)[EB_MAX_DIMS];
    int *new_ndim;
    int64_t *new_arena;
    uint64_t new_arena_size;
};

static const char *op_name(int t) { return eb_op_type_name(t); }

void eb_finetune_default_options(eb_finetune_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->weight_filler.type = EB_FILLER_XAVIER;
    o->weight_filler.std = 1.0;
    o->weight_filler.max = 1.0;
    o->bias_filler.type = EB_FILLER_CONSTANT;
    o->bias_filler.std = 1.0;
    o->bias_filler.max = 1.0;
    o->solver = EB_SOLVER_SGD;
    o->base_lr = 0.01;
    o->momentum = 0.9;
    o->weight_decay = 5e-4;
    o->momentum2 = 0.999;
    o->delta = 1e-8;
    o->lr_policy = EB_LR_FIXED;
    o->gamma = 0.1;
    o->power = 1.0;
    o->stepsize = 1;
    o->max_iter = 0;
    o->clip_gradients = -1;
    o->iter_size = 1;
    o->lr_mult[0] = o->lr_mult[1] = 1;
    o->decay_mult[0] = o->decay_mult[1] = 1;
    o->loss = EB_LOSS_SOFTMAX;
    o->normalization = EB_NORM_VALID;
    o->threads = 1;
}

void eb_free(void *p) { free(p); }

static void free_params(eb_finetune *ft) {
    for (int p = 0; p < 2; p++) {
        free(ft->params[p].w);
        free(ft->params[p].diff);
        free(ft->params[p].hist);
        free(ft->params[p].hist2);
        memset(&ft->params[p], 0, sizeof ft->params[p]);
    }
}

void eb_finetune_free(eb_finetune *ft) {
    if (!ft) return;
    eb_session_free(ft->session);
    free_params(ft);
    for (int i = 0; i < ft->n_labels; i++) free(ft->labels[i]);
    free(ft->labels);
    free(ft->scores);
    free(ft->grad);
    free(ft->feat_work);
    free(ft->changed);
    free(ft->new_dims);
    free(ft->new_ndim);
    free(ft->new_arena);
    free(ft);
}

static int finite(double x) { return x == x && x - x == 0; }

static eb_status check_options(const eb_finetune_options *o) {
#define BAD(...) return eb_set_error(EB_ERR_INVALID_ARGUMENT, __VA_ARGS__)
    if (o->num_output < 0) BAD("num_output must be >= 1 (or 0 to keep the layer's), got %lld",
                               (long long)o->num_output);
    if (o->num_output > ((int64_t)1 << 31)) BAD("num_output %lld is too large", (long long)o->num_output);
    if (o->solver < EB_SOLVER_SGD || o->solver > EB_SOLVER_ADAM) BAD("unknown solver type %d", o->solver);
    if (!finite(o->base_lr) || o->base_lr < 0) BAD("base_lr must be a finite number >= 0");
    if (!finite(o->momentum) || o->momentum < 0) BAD("momentum must be >= 0");
    if (!finite(o->weight_decay) || o->weight_decay < 0) BAD("weight_decay must be >= 0");
    if (o->lr_policy < EB_LR_FIXED || o->lr_policy > EB_LR_SIGMOID) BAD("unknown lr_policy %d", o->lr_policy);
    if (!finite(o->gamma) || !finite(o->power)) BAD("gamma and power must be finite");
    if (o->lr_policy == EB_LR_STEP && o->stepsize < 1) BAD("lr_policy step needs stepsize >= 1");
    if (o->lr_policy == EB_LR_POLY && o->max_iter < 1) BAD("lr_policy poly needs max_iter >= 1");
    if (o->n_stepvalue < 0 || o->n_stepvalue > EB_MAX_STEPVALUES)
        BAD("n_stepvalue must be in 0..%d", EB_MAX_STEPVALUES);
    for (int i = 1; i < o->n_stepvalue; i++)
        if (o->stepvalue[i] <= o->stepvalue[i - 1]) BAD("stepvalue must be increasing");
    if (o->iter_size < 1) BAD("iter_size must be >= 1, got %d", o->iter_size);
    if (o->loss != EB_LOSS_SOFTMAX && o->loss != EB_LOSS_EUCLIDEAN) BAD("unknown loss type %d", o->loss);
    if (o->normalization < EB_NORM_FULL || o->normalization > EB_NORM_NONE)
        BAD("unknown loss normalization %d", o->normalization);
    for (int k = 0; k < 2; k++)
        if (o->mults_given && (!finite(o->lr_mult[k]) || !finite(o->decay_mult[k])))
            BAD("lr_mult and decay_mult must be finite");
    if (o->n_labels < 0) BAD("n_labels must be >= 0");
    if (o->n_labels > 0 && !o->labels) BAD("labels is NULL but n_labels is %d", o->n_labels);
    return EB_OK;
#undef BAD
}

static int is_conv_1x1(const eb_node *node, char *why, size_t n) {
    eb_error err;
    int64_t v[4];
    int cnt;
    const char *keys[] = {"kernel", "stride", "pad", "dilation"};
    const int64_t want[] = {1, 1, 0, -1};
    for (int k = 0; k < 4; k++) {
        if (eb_attr_ints(node, keys[k], v, 4, &cnt, &err) != EB_OK) {
            snprintf(why, n, "%.200s", err.msg); /* why holds 256 bytes */
            return 0;
        }
        if (want[k] < 0) continue;
        for (int i = 0; i < cnt; i++)
            if (v[i] != want[k]) {
                snprintf(why, n, "its %s is not %lld", keys[k], (long long)want[k]);
                return 0;
            }
        if (k == 0 && cnt == 0) {
            snprintf(why, n, "it has no kernel attribute");
            return 0;
        }
    }
    int64_t group = 1;
    if (eb_attr_int(node, "group", 1, &group, &err) != EB_OK || group != 1) {
        snprintf(why, n, "it has %lld groups", (long long)group);
        return 0;
    }
    return 1;
}

static int is_trainable(const eb_node *node, char *why, size_t n) {
    if (node->type == EB_OP_InnerProduct) return 1;
    if (node->type == EB_OP_Convolution) return is_conv_1x1(node, why, n);
    snprintf(why, n, "it is a %s", op_name(node->type));
    return 0;
}

static int same_shape_op(int type) {
    switch (type) {
    case EB_OP_Softmax: case EB_OP_ReLU: case EB_OP_ELU: case EB_OP_Sigmoid: case EB_OP_TanH:
    case EB_OP_AbsVal: case EB_OP_BNLL: case EB_OP_Power: case EB_OP_Exp: case EB_OP_Log:
    case EB_OP_Threshold: case EB_OP_Clip: case EB_OP_Dropout: case EB_OP_Split:
    case EB_OP_Quantize: case EB_OP_Dequantize:
        return 1;
    }
    return 0;
}

/* Shapes and arena slots of everything a new num_output changes. */
static eb_status plan_rewrite(eb_finetune *ft) {
    const eb_model *m = ft->model;
    int nt = m->n_tensors;
    ft->changed = (uint8_t *)calloc((size_t)nt + 1, 1);
    ft->new_dims = (int64_t(*)[EB_MAX_DIMS])calloc((size_t)nt + 1, sizeof *ft->new_dims);
    ft->new_ndim = (int *)calloc((size_t)nt + 1, sizeof(int));
    ft->new_arena = (int64_t *)calloc((size_t)nt + 1, sizeof(int64_t));
    if (!ft->changed || !ft->new_dims || !ft->new_ndim || !ft->new_arena)
        return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < nt; i++) {
        ft->new_ndim[i] = m->tensors[i].ndim;
        memcpy(ft->new_dims[i], m->tensors[i].dims, sizeof ft->new_dims[i]);
        ft->new_arena[i] = m->tensors[i].arena_offset;
    }
    ft->new_arena_size = m->arena_declared;
    if (ft->n_out == ft->n_out_orig) return EB_OK;
    const eb_node *node = ft->node;
    /* weights */
    int wi = node->weights[0]->index;
    ft->changed[wi] = 1;
    ft->new_dims[wi][ft->transpose ? 1 : 0] = ft->n_out;
    if (ft->has_bias) {
        int bi = node->weights[1]->index;
        ft->changed[bi] = 1;
        ft->new_dims[bi][0] = ft->n_out;
    }
    /* the layer's output: channel axis 1 */
    int oi = node->outputs[0]->index;
    ft->changed[oi] = 1;
    ft->new_dims[oi][1] = ft->n_out;
    for (int k = ft->node_index + 1; k < m->n_nodes; k++) {
        const eb_node *nk = &m->nodes[k];
        int touched = -1;
        for (int i = 0; i < nk->n_inputs; i++)
            if (ft->changed[nk->inputs[i]->index]) touched = i;
        if (touched < 0) continue;
        if (!same_shape_op(nk->type) || nk->n_inputs != 1 || nk->n_weights != 0)
            return eb_set_error(EB_ERR_UNSUPPORTED,
                                "layer '%.64s' (%s) reads the output of the trained layer '%.64s': "
                                "a new num_output cannot change its shape (only Softmax, "
                                "activations, Dropout and Split can follow)",
                                nk->name, op_name(nk->type), node->name);
        const eb_tensor *in = nk->inputs[0];
        for (int o = 0; o < nk->n_outputs; o++) {
            const eb_tensor *t = nk->outputs[o];
            if (!eb_same_shape(t, in))
                return eb_set_error(EB_ERR_UNSUPPORTED,
                                    "layer '%.64s' (%s) after the trained layer changes the shape: "
                                    "cannot follow a new num_output", nk->name, op_name(nk->type));
            ft->changed[t->index] = 1;
            ft->new_ndim[t->index] = ft->new_ndim[in->index];
            memcpy(ft->new_dims[t->index], ft->new_dims[in->index], sizeof ft->new_dims[0]);
        }
    }
    /* grown activations get fresh slots at the end of the arena */
    uint64_t end = (m->arena_declared + EB_ALIGN - 1) / EB_ALIGN * EB_ALIGN;
    for (int i = 0; i < nt; i++) {
        const eb_tensor *t = &m->tensors[i];
        if (!ft->changed[i] || t->is_constant) continue;
        int64_t count = 1;
        for (int d = 0; d < ft->new_ndim[i]; d++) count *= ft->new_dims[i][d];
        uint64_t esize = t->dtype == EB_FLOAT32 || t->dtype == EB_INT32 ? 4 : t->dtype == EB_FLOAT16 ? 2 : 1;
        uint64_t bytes = (uint64_t)count * esize;
        if (count <= t->count) continue; /* fits its old slot */
        ft->new_arena[i] = (int64_t)end;
        end = (end + bytes + EB_ALIGN - 1) / EB_ALIGN * EB_ALIGN;
    }
    if (end > ft->new_arena_size) ft->new_arena_size = end;
    return EB_OK;
}

static eb_status alloc_param(eb_param *p, int64_t count, int adam) {
    p->count = count;
    size_t n = (size_t)(count > 0 ? count : 1);
    p->w = (float *)calloc(n, sizeof(float));
    p->diff = (double *)calloc(n, sizeof(double));
    p->hist = (float *)calloc(n, sizeof(float));
    p->hist2 = adam ? (float *)calloc(n, sizeof(float)) : NULL;
    if (!p->w || !p->diff || !p->hist || (adam && !p->hist2))
        return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory for %lld parameters",
                            (long long)count);
    return EB_OK;
}

eb_status eb_finetune_create(const eb_model *model, const eb_finetune_options *options,
                             eb_finetune **out) {
    if (!out) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_finetune_create: out is NULL");
    *out = NULL;
    if (!model) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_finetune_create: model is NULL");
    eb_finetune_options o;
    if (options) o = *options;
    else eb_finetune_default_options(&o);
    eb_status st = check_options(&o);
    if (st != EB_OK) return st;

    /* the trainable layer */
    const eb_model *m = model;
    int idx = -1;
    char why[256] = "";
    if (o.layer && o.layer[0]) {
        for (int i = 0; i < m->n_nodes; i++)
            if (strcmp(m->nodes[i].name, o.layer) == 0) idx = i;
        if (idx < 0)
            return eb_set_error(EB_ERR_INVALID_ARGUMENT, "no layer named '%.128s' in the model",
                                o.layer);
        if (!is_trainable(&m->nodes[idx], why, sizeof why))
            return eb_set_error(EB_ERR_INVALID_ARGUMENT,
                                "layer '%.128s' cannot be fine-tuned: %s (only an InnerProduct or "
                                "a 1x1 Convolution with stride 1, no padding and one group can)",
                                o.layer, why);
    } else {
        for (int i = m->n_nodes - 1; i >= 0 && idx < 0; i--)
            if (is_trainable(&m->nodes[i], why, sizeof why)) idx = i;
        if (idx < 0)
            return eb_set_error(EB_ERR_INVALID_ARGUMENT,
                                "the model has no InnerProduct or 1x1 Convolution to fine-tune");
    }
    const eb_node *node = &m->nodes[idx];
    if (eb_attr_has(node, "activation"))
        return eb_set_error(EB_ERR_UNSUPPORTED,
                            "layer '%.64s' has a fused activation (the optimizer folded an "
                            "activation into it): convert with that pass off to fine-tune it",
                            node->name);
    if (node->n_inputs != 1 || node->n_outputs != 1 || node->n_weights < 1 || node->n_weights > 2)
        return eb_set_error(EB_ERR_UNSUPPORTED, "layer '%.64s' has an unexpected signature",
                            node->name);
    const eb_tensor *feat = node->inputs[0];
    int stored[2] = {EB_FLOAT32, EB_FLOAT32};
    for (int k = 0; k < node->n_weights; k++)
        if ((stored[k] = eb_bundle_tensor_dtype(m->data, m->size, node->weights[k]->index)) < 0)
            return eb_set_error(EB_ERR_INVALID_BUNDLE, "layer '%.64s': cannot read the dtype of "
                                "weight '%.64s'", node->name, node->weights[k]->name);
    int precision;
    if (stored[0] == EB_INT8) {
        const eb_tensor *w0 = node->weights[0], *y0 = node->outputs[0];
        precision = EB_INT8;
        if (feat->dtype != EB_INT8 || y0->dtype != EB_INT8 || feat->quant_count != 1 ||
            y0->quant_count != 1)
            return eb_set_error(EB_ERR_UNSUPPORTED,
                                "layer '%.64s': int8 weights but its input '%.64s' or output "
                                "'%.64s' is not a per-tensor INT8 activation", node->name,
                                feat->name, y0->name);
        if (node->n_weights > 1 && stored[1] != EB_INT32)
            return eb_set_error(EB_ERR_UNSUPPORTED,
                                "layer '%.64s': int8 weights need an INT32 bias, '%.64s' is not",
                                node->name, node->weights[1]->name);
        if (w0->ndim < 1 || !(w0->quant_count == 1 ||
                              (w0->quant_axis == 0 && w0->quant_count == w0->dims[0])))
            return eb_set_error(EB_ERR_UNSUPPORTED,
                                "layer '%.64s': weight '%.64s' is not quantized per output "
                                "channel (axis 0) or per tensor", node->name, w0->name);
    } else if ((stored[0] == EB_FLOAT32 || stored[0] == EB_FLOAT16) &&
               (node->n_weights < 2 || stored[1] == EB_FLOAT32 || stored[1] == EB_FLOAT16)) {
        precision = stored[0] == EB_FLOAT16 || (node->n_weights > 1 && stored[1] == EB_FLOAT16)
                        ? EB_FLOAT16 : EB_FLOAT32;
        if (feat->dtype != EB_FLOAT32 || node->outputs[0]->dtype != EB_FLOAT32)
            return eb_set_error(EB_ERR_UNSUPPORTED,
                                "layer '%.64s': float weights but its input '%.64s' or output is "
                                "not float32", node->name, feat->name);
    } else {
        return eb_set_error(EB_ERR_UNSUPPORTED,
                            "layer '%.64s': weights of dtypes %d/%d cannot be fine-tuned (float32, "
                            "float16, or int8 with an int32 bias can)", node->name, stored[0],
                            node->n_weights > 1 ? stored[1] : -1);
    }

    eb_finetune *ft = (eb_finetune *)calloc(1, sizeof *ft);
    if (!ft) return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
    ft->model = m;
    ft->opt = o;
    ft->opt.labels = NULL;
    ft->node_index = idx;
    ft->node = node;
    ft->feat = feat;
    ft->is_conv = node->type == EB_OP_Convolution;
    ft->has_bias = node->n_weights == 2;
    ft->precision = precision;
    ft->blob_dtype[0] = stored[0];
    ft->blob_dtype[1] = stored[1];
    if (precision == EB_INT8) {
        ft->s_in = feat->quant_scale[0];
        ft->zp_in = feat->quant_zero_point[0];
        ft->s_out = node->outputs[0]->quant_scale[0];
        ft->zp_out = node->outputs[0]->quant_zero_point[0];
        ft->bias_quant = ft->has_bias && node->weights[1]->quant_count > 0;
    }
    const eb_tensor *w = node->weights[0];
    const eb_tensor *y = node->outputs[0];
    if (feat->ndim < 1 || y->ndim < 2) {
        eb_finetune_free(ft);
        return eb_set_error(EB_ERR_UNSUPPORTED, "layer '%.64s': unexpected tensor ranks", node->name);
    }
    ft->batch = feat->dims[0];
    if (ft->is_conv) {
        ft->kdim = feat->ndim >= 2 ? feat->dims[1] : 1;
        ft->spatial = feat->count / (ft->batch * ft->kdim);
        ft->n_out_orig = w->dims[0];
    } else {
        int64_t axis = 1;
        int64_t transpose = 0;
        eb_error err;
        eb_attr_int(node, "axis", 1, &axis, &err);
        eb_attr_int(node, "transpose", 0, &transpose, &err);
        if (axis < 0) axis += feat->ndim;
        if (axis != 1) {
            eb_finetune_free(ft);
            return eb_set_error(EB_ERR_UNSUPPORTED,
                                "layer '%.64s': InnerProduct axis %lld (only axis 1 can be "
                                "fine-tuned)", node->name, (long long)axis);
        }
        ft->transpose = transpose != 0;
        if (ft->transpose && precision == EB_INT8) {
            eb_finetune_free(ft);
            return eb_set_error(EB_ERR_UNSUPPORTED,
                                "layer '%.64s': an int8 InnerProduct with transpose", node->name);
        }
        ft->kdim = feat->count / ft->batch;
        ft->spatial = 1;
        ft->n_out_orig = ft->transpose ? w->dims[1] : w->dims[0];
    }
    if (w->count != ft->n_out_orig * ft->kdim || y->dims[0] != ft->batch) {
        eb_finetune_free(ft);
        return eb_set_error(EB_ERR_UNSUPPORTED, "layer '%.64s': unexpected weight/output shapes",
                            node->name);
    }
    ft->n_out = o.num_output > 0 ? o.num_output : ft->n_out_orig;

    /* per-blob lr/decay multipliers: given, else the bundle's, else 1/1 */
    double lr[2] = {1, 1}, dc[2] = {1, 1};
    {
        float pm[4];
        int n = eb_bundle_op_param_mults(m->data, m->size, idx, pm, 4);
        for (int k = 0; k + 1 < n && k / 2 < 2; k += 2) lr[k / 2] = pm[k], dc[k / 2] = pm[k + 1];
    }
    for (int k = 0; k < 2; k++) {
        if (o.mults_given & 1) lr[k] = o.lr_mult[k];
        if (o.mults_given & 2) dc[k] = o.decay_mult[k];
    }
    ft->opt.mults_given = 3;
    for (int k = 0; k < 2; k++) ft->opt.lr_mult[k] = lr[k], ft->opt.decay_mult[k] = dc[k];

    /* parameters */
    int adam = o.solver == EB_SOLVER_ADAM;
    ft->n_params = ft->has_bias ? 2 : 1;
    if ((st = alloc_param(&ft->params[0], ft->n_out * ft->kdim, adam)) != EB_OK ||
        (ft->has_bias && (st = alloc_param(&ft->params[1], ft->n_out, adam)) != EB_OK)) {
        eb_finetune_free(ft);
        return st;
    }
    for (int p = 0; p < ft->n_params; p++)
        ft->params[p].lr_mult = lr[p], ft->params[p].decay_mult = dc[p];
    if (o.num_output > 0 || o.reinit) {
        eb_rng rng;
        eb_rng_seed(&rng, o.seed);
        int64_t wd[4] = {ft->n_out, ft->kdim, 1, 1};
        if ((st = eb_train_fill(&o.weight_filler, &rng, ft->params[0].w, ft->is_conv ? 4 : 2, wd,
                                "weight")) != EB_OK ||
            (ft->has_bias &&
             (st = eb_train_fill(&o.bias_filler, &rng, ft->params[1].w, 1, wd, "bias")) != EB_OK)) {
            eb_finetune_free(ft);
            return st;
        }
    } else if (precision == EB_INT8) { /* dequantize: W = q * scale_c, b = q_b * s_in * scale_c */
        const int8_t *q = (const int8_t *)w->const_data;
        const int32_t *qb = ft->has_bias ? (const int32_t *)node->weights[1]->const_data : NULL;
        for (int64_t n = 0; n < ft->n_out; n++) {
            const float sc = w->quant_scale[w->quant_count == 1 ? 0 : n];
            for (int64_t k = 0; k < ft->kdim; k++)
                ft->params[0].w[n * ft->kdim + k] = (float)q[n * ft->kdim + k] * sc;
            if (qb)
                ft->params[1].w[n] = (float)((double)qb[n] * (double)ft->s_in * (double)sc);
        }
    } else {
        const float *src = (const float *)w->const_data;
        if (ft->transpose) {
            for (int64_t k = 0; k < ft->kdim; k++)
                for (int64_t n = 0; n < ft->n_out; n++)
                    ft->params[0].w[n * ft->kdim + k] = src[k * ft->n_out + n];
        } else {
            memcpy(ft->params[0].w, src, (size_t)w->count * sizeof(float));
        }
        if (ft->has_bias)
            memcpy(ft->params[1].w, node->weights[1]->const_data, (size_t)ft->n_out * sizeof(float));
    }

    /* labels for the new bundle */
    if (o.n_labels > 0) {
        ft->labels = (char **)calloc((size_t)o.n_labels, sizeof(char *));
        if (!ft->labels) {
            eb_finetune_free(ft);
            return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
        }
        for (int i = 0; i < o.n_labels; i++) {
            const char *s = o.labels[i] ? o.labels[i] : "";
            ft->labels[i] = (char *)malloc(strlen(s) + 1);
            if (!ft->labels[i]) {
                ft->n_labels = i;
                eb_finetune_free(ft);
                return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
            }
            strcpy(ft->labels[i], s);
        }
        ft->n_labels = o.n_labels;
        ft->replace_labels = 1;
    } else if (ft->n_out != ft->n_out_orig) {
        ft->replace_labels = 1; /* the old class names no longer apply */
    }

    if ((st = plan_rewrite(ft)) != EB_OK) {
        eb_finetune_free(ft);
        return st;
    }
    eb_session_options so;
    so.threads = o.threads > 0 ? o.threads : 1;
    if ((st = eb_session_create(m, &so, &ft->session)) != EB_OK) {
        eb_finetune_free(ft);
        return st;
    }
    *out = ft;
    return EB_OK;
}

const char *eb_finetune_layer(const eb_finetune *ft) { return ft ? ft->node->name : NULL; }
int64_t eb_finetune_feature_size(const eb_finetune *ft) { return ft ? ft->kdim * ft->spatial : -1; }
int64_t eb_finetune_num_output(const eb_finetune *ft) { return ft ? ft->n_out : -1; }
int64_t eb_finetune_spatial(const eb_finetune *ft) { return ft ? ft->spatial : -1; }
int64_t eb_finetune_iter(const eb_finetune *ft) { return ft ? ft->iter : -1; }

double eb_finetune_learning_rate(const eb_finetune *ft) {
    if (!ft) return 0;
    int64_t cs = ft->current_step;
    return eb_train_learning_rate(&ft->opt, ft->iter, &cs);
}

eb_status eb_finetune_features(eb_finetune *ft, const float *inputs, size_t n, float *features) {
    if (!ft) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_finetune_features: ft is NULL");
    const eb_model *m = ft->model;
    if (m->n_inputs != 1)
        return eb_set_error(EB_ERR_UNSUPPORTED,
                            "features: the model has %d inputs; pass features directly",
                            m->n_inputs);
    if (n > 0 && (!inputs || !features))
        return eb_set_error(EB_ERR_INVALID_ARGUMENT, "features: NULL inputs or output");
    const eb_tensor *in = &m->tensors[m->inputs[0]];
    const int64_t b = in->dims[0];
    if (in->ndim < 1 || b != ft->batch)
        return eb_set_error(EB_ERR_UNSUPPORTED,
                            "features: the model input '%.64s' has batch %lld but layer '%.64s' "
                            "sees batch %lld", in->name, (long long)(in->ndim ? b : 0),
                            ft->node->name, (long long)ft->batch);
    const int64_t per_in = in->count / b, per_feat = ft->kdim * ft->spatial;
    float *tmp = NULL;
    for (size_t s0 = 0; s0 < n; s0 += (size_t)b) {
        size_t take = n - s0 < (size_t)b ? n - s0 : (size_t)b;
        eb_status st;
        if (take < (size_t)b) { /* a partial last batch: pad with zeros */
            tmp = (float *)calloc((size_t)in->count, sizeof(float));
            if (!tmp) return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
            memcpy(tmp, inputs + s0 * (size_t)per_in, take * (size_t)per_in * sizeof(float));
            st = eb_session_set_input(ft->session, 0, tmp, (size_t)in->count);
            free(tmp);
            tmp = NULL;
        } else {
            st = eb_session_set_input(ft->session, 0, inputs + s0 * (size_t)per_in, (size_t)in->count);
        }
        if (st != EB_OK) return st;
        if ((st = eb_session_run_ops(ft->session, ft->node_index)) != EB_OK) return st;
        const uint8_t *src = ft->session->arena + ft->feat->arena_offset;
        float *dst = features + s0 * (size_t)per_feat;
        const size_t cnt = take * (size_t)per_feat;
        if (ft->feat->dtype == EB_INT8) { /* the Dequantize op: float32(q - zp) * s */
            const int8_t *q = (const int8_t *)(const void *)src;
            for (size_t i = 0; i < cnt; i++) dst[i] = (float)((int32_t)q[i] - ft->zp_in) * ft->s_in;
        } else {
            memcpy(dst, src, cnt * sizeof(float));
        }
    }
    return EB_OK;
}

static eb_status ensure_work(eb_finetune *ft, size_t rows) {
    if (rows <= ft->work_rows) return EB_OK;
    size_t per = (size_t)(ft->n_out * ft->spatial);
    double *s = (double *)realloc(ft->scores, rows * per * sizeof(double));
    if (!s) return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
    ft->scores = s;
    double *g = (double *)realloc(ft->grad, rows * per * sizeof(double));
    if (!g) return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
    ft->grad = g;
    ft->work_rows = rows;
    return EB_OK;
}

static eb_status check_labels(const eb_finetune *ft, const float *labels, size_t n) {
    if (ft->opt.loss != EB_LOSS_SOFTMAX) {
        for (size_t i = 0; i < n * (size_t)(ft->n_out * ft->spatial); i++)
            if (!finite(labels[i]))
                return eb_set_error(EB_ERR_INVALID_ARGUMENT, "target %zu is not finite", i);
        return EB_OK;
    }
    for (size_t i = 0; i < n * (size_t)ft->spatial; i++) {
        const double l = labels[i];
        if (ft->opt.has_ignore_label && l == (double)ft->opt.ignore_label) continue;
        if (!(l >= 0 && l < (double)ft->n_out) || l != floor(l))
            return eb_set_error(EB_ERR_INVALID_ARGUMENT,
                                "label %g of sample %zu is out of range: layer '%.64s' has %lld "
                                "outputs (labels 0..%lld)", l, i / (size_t)ft->spatial,
                                ft->node->name, (long long)ft->n_out, (long long)ft->n_out - 1);
    }
    return EB_OK;
}

/* scores = W x + b for n samples. */
static void forward_with(const eb_finetune *ft, const float *W, const float *b, const float *x,
                         size_t n, double *scores) {
    const int64_t K = ft->kdim, S = ft->spatial, N = ft->n_out;
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * (size_t)(K * S);
        double *yi = scores + i * (size_t)(N * S);
        for (int64_t o = 0; o < N; o++) {
            const float *wr = W + o * K;
            for (int64_t s = 0; s < S; s++) {
                double acc = b ? (double)b[o] : 0.0;
                if (S == 1)
                    for (int64_t k = 0; k < K; k++) acc += (double)wr[k] * (double)xi[k];
                else
                    for (int64_t k = 0; k < K; k++) acc += (double)wr[k] * (double)xi[k * S + s];
                yi[o * S + s] = acc;
            }
        }
    }
}

static void forward(const eb_finetune *ft, const float *x, size_t n, double *scores) {
    forward_with(ft, ft->params[0].w, ft->has_bias ? ft->params[1].w : NULL, x, n, scores);
}

static eb_status check_finite_weights(const eb_finetune *ft) {
    for (int p = 0; p < ft->n_params; p++)
        for (int64_t i = 0; i < ft->params[p].count; i++)
            if (!finite(ft->params[p].w[i]))
                return eb_set_error(EB_ERR_RUNTIME,
                                    "layer '%.64s': a trained %s is not finite (training "
                                    "diverged: lower base_lr): cannot quantize it",
                                    ft->node->name, p ? "bias" : "weight");
    return EB_OK;
}

/* The int8 head as saved: weights re-quantized (qw N x K, qb N, scale N). */
static eb_status quantize_head(const eb_finetune *ft, int8_t *qw, int32_t *qb, float *scale) {
    eb_status st = check_finite_weights(ft);
    if (st != EB_OK) return st;
    eb_tq_quantize_weights(ft->params[0].w, ft->has_bias ? ft->params[1].w : NULL, ft->n_out,
                           ft->kdim, ft->s_in, qw, qb, scale);
    return EB_OK;
}

/* scores of the int8 head as the runtime computes them: the features on the input's grid
 * (the Quantize op), acc = q_b + sum (x - zp_in) * q_w exactly, requantized per channel with
 * M_c = s_in * scale_c / s_out, clamped to int8, then dequantized (the Dequantize op). */
static eb_status forward_int8(const eb_finetune *ft, const float *x, size_t n, double *scores) {
    const int64_t K = ft->kdim, S = ft->spatial, N = ft->n_out;
    int8_t *qw = (int8_t *)malloc((size_t)(N * K) + 1);
    int32_t *qb = (int32_t *)malloc((size_t)N * sizeof(int32_t) + 1);
    float *scale = (float *)malloc((size_t)N * sizeof(float) + 1);
    eb_qmult *mult = (eb_qmult *)malloc((size_t)N * sizeof(eb_qmult) + 1);
    int32_t *xq = (int32_t *)malloc((size_t)K * sizeof(int32_t) + 1);
    eb_status st = EB_OK;
    if (!qw || !qb || !scale || !mult || !xq) {
        st = eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
        goto out;
    }
    if ((st = quantize_head(ft, qw, ft->has_bias ? qb : NULL, scale)) != EB_OK) goto out;
    for (int64_t o = 0; o < N; o++)
        if (eb_q_quantize_multiplier((double)ft->s_in * (double)scale[o] / (double)ft->s_out, &mult[o])) {
            st = eb_set_error(EB_ERR_UNSUPPORTED,
                              "layer '%.64s': output %lld's requantization multiplier s_in * "
                              "s_w / s_out is too large for int8", ft->node->name, (long long)o);
            goto out;
        }
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * (size_t)(K * S);
        double *yi = scores + i * (size_t)(N * S);
        for (int64_t s = 0; s < S; s++) {
            for (int64_t k = 0; k < K; k++) { /* fixed_point.quantize_tensor */
                double v = (double)xi[k * S + s] / (double)ft->s_in;
                if (v != v) v = 0;
                if (v > 1e9) v = 1e9;
                if (v < -1e9) v = -1e9;
                double q = eb_q_round_half_away(v) + ft->zp_in;
                if (q > 127) q = 127;
                if (q < -128) q = -128;
                xq[k] = (int32_t)q - ft->zp_in;
            }
            for (int64_t o = 0; o < N; o++) {
                const int8_t *wr = qw + o * K;
                int64_t acc = ft->has_bias ? qb[o] : 0;
                for (int64_t k = 0; k < K; k++) acc += (int64_t)wr[k] * xq[k];
                int64_t v = (int64_t)ft->zp_out + eb_q_mbqm(acc, mult[o]);
                if (v > 127) v = 127;
                if (v < -128) v = -128;
                yi[o * S + s] = (double)((float)(int32_t)(v - ft->zp_out) * ft->s_out);
            }
        }
    }
out:
    free(qw);
    free(qb);
    free(scale);
    free(mult);
    free(xq);
    return st;
}

/* A blob as saved in an fp16 bundle: rounded to float16 (unless it is stored float32). */
static void as_saved_fp16(const eb_finetune *ft, int p, float *dst) {
    const eb_param *pp = &ft->params[p];
    const int half = ft->blob_dtype[p] == EB_FLOAT16 && eb_train_fits_half(pp->w, pp->count);
    for (int64_t i = 0; i < pp->count; i++)
        dst[i] = half ? eb_half_to_float(eb_float_to_half(pp->w[i])) : pp->w[i];
}

/* The forward of evaluation: the head as the saved bundle has it. */
static eb_status forward_saved(const eb_finetune *ft, const float *x, size_t n, double *scores) {
    if (ft->precision == EB_INT8) return forward_int8(ft, x, n, scores);
    if (ft->precision != EB_FLOAT16) {
        forward(ft, x, n, scores);
        return EB_OK;
    }
    float *w = (float *)malloc((size_t)ft->params[0].count * sizeof(float) + 1);
    float *b = (float *)malloc((size_t)ft->n_out * sizeof(float) + 1);
    if (!w || !b) {
        free(w);
        free(b);
        return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
    }
    as_saved_fp16(ft, 0, w);
    if (ft->has_bias) as_saved_fp16(ft, 1, b);
    forward_with(ft, w, ft->has_bias ? b : NULL, x, n, scores);
    free(w);
    free(b);
    return EB_OK;
}

static double loss_of(eb_finetune *ft, const float *labels, size_t n, double *grad,
                      int64_t *correct, int64_t *valid) {
    if (ft->opt.loss == EB_LOSS_EUCLIDEAN) {
        if (correct) *correct = 0;
        if (valid) *valid = 0;
        return eb_train_euclidean_loss(ft->scores, labels, (int64_t)n, ft->n_out * ft->spatial, grad);
    }
    return eb_train_softmax_loss(ft->scores, labels, (int64_t)n, ft->n_out, ft->spatial,
                                 ft->opt.normalization, ft->opt.has_ignore_label,
                                 ft->opt.ignore_label, grad, correct, valid);
}

/* dW += sum_i dY_i X_i^T, db += sum_i,s dY_i (only blobs with lr_mult != 0, as Caffe). */
static void backward(eb_finetune *ft, const float *x, size_t n) {
    const int64_t K = ft->kdim, S = ft->spatial, N = ft->n_out;
    double *dW = ft->params[0].diff, *db = ft->has_bias ? ft->params[1].diff : NULL;
    int do_w = ft->params[0].lr_mult != 0, do_b = db && ft->params[1].lr_mult != 0;
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * (size_t)(K * S);
        const double *gi = ft->grad + i * (size_t)(N * S);
        for (int64_t o = 0; o < N; o++) {
            double *dw = dW + o * K;
            for (int64_t s = 0; s < S; s++) {
                const double g = gi[o * S + s];
                if (g == 0) continue;
                if (do_w) {
                    if (S == 1)
                        for (int64_t k = 0; k < K; k++) dw[k] += g * (double)xi[k];
                    else
                        for (int64_t k = 0; k < K; k++) dw[k] += g * (double)xi[k * S + s];
                }
                if (do_b) db[o] += g;
            }
        }
    }
}

eb_status eb_finetune_step(eb_finetune *ft, const float *features, const float *labels,
                           size_t n, float *loss) {
    if (!ft) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_finetune_step: ft is NULL");
    if (!features || !labels)
        return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_finetune_step: NULL features or labels");
    const size_t passes = (size_t)ft->opt.iter_size;
    if (n == 0 || n % passes != 0)
        return eb_set_error(EB_ERR_INVALID_ARGUMENT,
                            "step: %zu samples cannot be split into iter_size = %zu equal batches",
                            n, passes);
    eb_status st = check_labels(ft, labels, n);
    if (st != EB_OK) return st;
    const size_t per = n / passes;
    if ((st = ensure_work(ft, per)) != EB_OK) return st;
    const size_t fs = (size_t)(ft->kdim * ft->spatial);
    const size_t ls = ft->opt.loss == EB_LOSS_SOFTMAX ? (size_t)ft->spatial
                                                      : (size_t)(ft->n_out * ft->spatial);
    double total = 0;
    for (size_t p = 0; p < passes; p++) {
        const float *x = features + p * per * fs;
        forward(ft, x, per, ft->scores);
        total += loss_of(ft, labels + p * per * ls, per, ft->grad, NULL, NULL);
        backward(ft, x, per);
    }
    double rate = eb_train_learning_rate(&ft->opt, ft->iter, &ft->current_step);
    eb_train_apply_update(&ft->opt, ft->params, ft->n_params, rate, ft->iter);
    ft->iter++;
    if (loss) *loss = (float)(total / (double)passes);
    return EB_OK;
}

eb_status eb_finetune_step_inputs(eb_finetune *ft, const float *inputs, const float *labels,
                                  size_t n, float *loss) {
    if (!ft) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_finetune_step_inputs: ft is NULL");
    size_t need = n * (size_t)(ft->kdim * ft->spatial);
    float *f = (float *)malloc((need ? need : 1) * sizeof(float));
    if (!f) return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
    eb_status st = eb_finetune_features(ft, inputs, n, f);
    if (st == EB_OK) st = eb_finetune_step(ft, f, labels, n, loss);
    free(f);
    return st;
}

eb_status eb_finetune_evaluate(eb_finetune *ft, const float *features, const float *labels,
                               size_t n, float *loss, float *accuracy, float *scores) {
    if (!ft) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_finetune_evaluate: ft is NULL");
    if (n == 0) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "evaluate: no samples");
    if (!features) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "evaluate: features is NULL");
    eb_status st;
    if (labels && (st = check_labels(ft, labels, n)) != EB_OK) return st;
    if ((st = ensure_work(ft, n)) != EB_OK) return st;
    if ((st = forward_saved(ft, features, n, ft->scores)) != EB_OK) return st;
    if (scores)
        for (size_t i = 0; i < n * (size_t)(ft->n_out * ft->spatial); i++) scores[i] = (float)ft->scores[i];
    if (labels) {
        int64_t correct = 0, valid = 0;
        double l = loss_of(ft, labels, n, NULL, &correct, &valid);
        if (loss) *loss = (float)l;
        if (accuracy) *accuracy = valid > 0 ? (float)((double)correct / (double)valid) : 0.0f;
    }
    return EB_OK;
}

eb_status eb_finetune_get_weights(const eb_finetune *ft, float *w, size_t w_count, float *b,
                                  size_t b_count) {
    if (!ft) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_finetune_get_weights: ft is NULL");
    size_t nb = ft->has_bias ? (size_t)ft->n_out : 0;
    if (w_count != (size_t)ft->params[0].count || b_count != nb || (w_count && !w) || (nb && !b))
        return eb_set_error(EB_ERR_INVALID_ARGUMENT,
                            "get_weights: layer '%.64s' has %lld weights and %zu biases, got "
                            "room for %zu and %zu", ft->node->name,
                            (long long)ft->params[0].count, nb, w_count, b_count);
    memcpy(w, ft->params[0].w, w_count * sizeof(float));
    if (nb) memcpy(b, ft->params[1].w, nb * sizeof(float));
    return EB_OK;
}

eb_status eb_finetune_set_weights(eb_finetune *ft, const float *w, size_t w_count,
                                  const float *b, size_t b_count) {
    if (!ft) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_finetune_set_weights: ft is NULL");
    size_t nb = ft->has_bias ? (size_t)ft->n_out : 0;
    if (w_count != (size_t)ft->params[0].count || b_count != nb || (w_count && !w) || (nb && !b))
        return eb_set_error(EB_ERR_INVALID_ARGUMENT,
                            "set_weights: layer '%.64s' takes %lld weights (%lld x %lld) and %zu "
                            "biases, got %zu and %zu", ft->node->name,
                            (long long)ft->params[0].count, (long long)ft->n_out,
                            (long long)ft->kdim, nb, w_count, b_count);
    for (size_t i = 0; i < w_count; i++)
        if (!finite(w[i])) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "set_weights: weight %zu is not finite", i);
    for (size_t i = 0; i < nb; i++)
        if (!finite(b[i])) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "set_weights: bias %zu is not finite", i);
    memcpy(ft->params[0].w, w, w_count * sizeof(float));
    if (nb) memcpy(ft->params[1].w, b, nb * sizeof(float));
    return EB_OK;
}

/* ---- saving -------------------------------------------------------------------------------- */

static const char *policy_name(int p) {
    static const char *const names[] = {"fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid"};
    return p >= 0 && p <= 6 ? names[p] : "?";
}

eb_status eb_finetune_serialize(const eb_finetune *ft, void **data, size_t *size) {
    if (!ft || !data || !size)
        return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_finetune_serialize: NULL argument");
    *data = NULL;
    *size = 0;
    const eb_node *node = ft->node;
    float *wt = NULL;
    const float *wdata = ft->params[0].w;
    if (ft->transpose) { /* stored (K, N) */
        wt = (float *)malloc((size_t)ft->params[0].count * sizeof(float) + 1);
        if (!wt) return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
        for (int64_t n = 0; n < ft->n_out; n++)
            for (int64_t k = 0; k < ft->kdim; k++) wt[k * ft->n_out + n] = ft->params[0].w[n * ft->kdim + k];
        wdata = wt;
    }
    int rep_t[2] = {node->weights[0]->index, ft->has_bias ? node->weights[1]->index : -1};
    const void *rep_d[2] = {wdata, ft->has_bias ? ft->params[1].w : NULL};
    uint64_t rep_b[2] = {(uint64_t)ft->params[0].count * 4, ft->has_bias ? (uint64_t)ft->n_out * 4 : 0};
    int rep_dt[2] = {-1, -1};
    /* int8: the re-quantized weights and their new per-channel scales; fp16: float16 blobs */
    int8_t *qw = NULL;
    int32_t *qb = NULL;
    float *qscale = NULL;
    uint16_t *half[2] = {NULL, NULL};
    int q_t[2] = {-1, -1}, q_count[2] = {0, 0}, q_axis[2] = {0, -1}, n_quant = 0;
    const float *q_scale[2] = {NULL, NULL};
    eb_status st = EB_OK;
    if (ft->precision == EB_INT8) {
        qw = (int8_t *)malloc((size_t)ft->params[0].count + 1);
        qb = (int32_t *)malloc((size_t)ft->n_out * sizeof(int32_t) + 1);
        qscale = (float *)malloc((size_t)ft->n_out * sizeof(float) + 1);
        if (!qw || !qb || !qscale) {
            st = eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
            goto fail;
        }
        if ((st = quantize_head(ft, qw, ft->has_bias ? qb : NULL, qscale)) != EB_OK) goto fail;
        rep_d[0] = qw;
        rep_b[0] = (uint64_t)ft->params[0].count;
        rep_d[1] = ft->has_bias ? qb : NULL;
        q_t[0] = rep_t[0];
        q_scale[0] = qscale;
        q_count[0] = (int)ft->n_out;
        n_quant = 1;
        if (ft->bias_quant) { /* the int8 kernels do not read a bias quant: drop the stale one */
            q_t[1] = rep_t[1];
            n_quant = 2;
        }
    } else if (ft->precision == EB_FLOAT16) {
        for (int p = 0; p < ft->n_params; p++) {
            const float *v = p ? ft->params[1].w : wdata;
            const int64_t cnt = ft->params[p].count;
            if (ft->blob_dtype[p] != EB_FLOAT16) continue;
            if (!eb_train_fits_half(v, cnt)) { /* beyond float16: saved float32 (as to_fp16) */
                rep_dt[p] = EB_FLOAT32;
                continue;
            }
            half[p] = (uint16_t *)malloc((size_t)cnt * 2 + 2);
            if (!half[p]) {
                st = eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
                goto fail;
            }
            for (int64_t i = 0; i < cnt; i++) half[p][i] = eb_float_to_half(v[i]);
            rep_d[p] = half[p];
            rep_b[p] = (uint64_t)cnt * 2;
        }
    }
    /* the layer name is user text: escape it for JSON */
    char name_json[300];
    size_t k = 0;
    for (const char *p = node->name; *p && k + 7 < sizeof name_json; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\') name_json[k++] = '\\', name_json[k++] = (char)ch;
        else if (ch < 0x20) k += (size_t)snprintf(name_json + k, sizeof name_json - k, "\\u%04x", ch);
        else name_json[k++] = (char)ch;
    }
    name_json[k] = '\0';
    char extra[900];
    snprintf(extra, sizeof extra,
             "{\"layer\": \"%s\", \"num_output\": %lld, \"iterations\": %lld, \"base_lr\": %.9g, "
             "\"lr_policy\": \"%s\", \"momentum\": %.9g, \"weight_decay\": %.9g, "
             "\"precision\": \"%s\"}",
             name_json, (long long)ft->n_out, (long long)ft->iter, ft->opt.base_lr,
             policy_name(ft->opt.lr_policy), ft->opt.momentum, ft->opt.weight_decay,
             ft->precision == EB_INT8 ? "int8" : ft->precision == EB_FLOAT16 ? "fp16" : "fp32");

    eb_rewrite rw;
    memset(&rw, 0, sizeof rw);
    rw.n_tensors = ft->model->n_tensors;
    rw.changed = ft->changed;
    rw.new_dims = (const int64_t(*)[EB_MAX_DIMS])ft->new_dims;
    rw.new_ndim = ft->new_ndim;
    rw.new_arena_offset = ft->new_arena;
    rw.new_arena_size = ft->new_arena_size;
    rw.n_replace = ft->has_bias ? 2 : 1;
    rw.replace_tensor = rep_t;
    rw.replace_data = rep_d;
    rw.replace_bytes = rep_b;
    rw.replace_dtype = rep_dt;
    rw.n_quant = n_quant;
    rw.quant_tensor = q_t;
    rw.quant_scale = q_scale;
    rw.quant_count = q_count;
    rw.quant_axis = q_axis;
    rw.op_index = ft->node_index;
    rw.num_output = ft->n_out;
    rw.write_mults = 1;
    rw.n_mults = 2 * ft->n_params;
    for (int p = 0; p < ft->n_params; p++) {
        rw.mults[2 * p] = (float)ft->params[p].lr_mult;
        rw.mults[2 * p + 1] = (float)ft->params[p].decay_mult;
    }
    rw.replace_labels = ft->replace_labels;
    rw.labels = (const char *const *)ft->labels;
    rw.n_labels = ft->n_labels;
    rw.extra_finetune_json = extra;
    uint8_t *out = NULL;
    size_t out_size = 0;
    st = eb_bundle_rewrite(ft->model->data, ft->model->size, &rw, &out, &out_size);
fail:
    free(wt);
    free(qw);
    free(qb);
    free(qscale);
    free(half[0]);
    free(half[1]);
    if (st != EB_OK) return st;
    /* verify: the runtime must load what it wrote */
    eb_model *check = NULL;
    st = eb_model_load_memory(out, out_size, 1, &check);
    if (st != EB_OK) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", eb_last_error());
        free(out);
        return eb_set_error(EB_ERR_RUNTIME, "the tuned bundle does not verify (a bug): %s", msg);
    }
    eb_model_free(check);
    *data = out;
    *size = out_size;
    return EB_OK;
}

static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

eb_status eb_write_file_atomic(const char *path, const void *data, size_t size) {
    if (!path || !path[0] || (!data && size))
        return eb_set_error(EB_ERR_INVALID_ARGUMENT, "write: bad path or data");
    size_t plen = strlen(path);
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    const char *base = slash ? slash + 1 : path;
    if (!base[0]) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "write: '%.300s' names a folder", path);
    char *dir = (char *)malloc(dlen + 2);
    char *tmp = (char *)malloc(plen + 32);
    if (!dir || !tmp) {
        free(dir);
        free(tmp);
        return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
    }
    if (slash) {
        memcpy(dir, path, dlen ? dlen : 1);
        dir[dlen ? dlen : 1] = '\0';
    } else {
        strcpy(dir, ".");
    }
    snprintf(tmp, plen + 32, "%.*s.%s.XXXXXX", (int)(base - path), path, base);
    eb_status st = EB_OK;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = eb_set_error(EB_ERR_IO, "cannot create a temporary file next to '%.300s': %s", path,
                          strerror(errno));
        goto out;
    }
    struct stat sb;
    mode_t mode = 0644;
    if (stat(path, &sb) == 0) mode = sb.st_mode & 0777;
    (void)fchmod(fd, mode);
    const uint8_t *p = (const uint8_t *)data;
    size_t left = size;
    while (left > 0) {
        ssize_t k = write(fd, p, left);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            st = eb_set_error(EB_ERR_IO, "cannot write '%.300s': %s", tmp,
                              k < 0 ? strerror(errno) : "no space");
            break;
        }
        p += k;
        left -= (size_t)k;
    }
    if (st == EB_OK && fsync(fd) != 0)
        st = eb_set_error(EB_ERR_IO, "cannot fsync '%.300s': %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == EB_OK)
        st = eb_set_error(EB_ERR_IO, "cannot close '%.300s': %s", tmp, strerror(errno));
    if (st == EB_OK && rename(tmp, path) != 0)
        st = eb_set_error(EB_ERR_IO, "cannot rename '%.300s' to '%.300s': %s", tmp, path,
                          strerror(errno));
    if (st != EB_OK) unlink(tmp);
    else (void)fsync_dir(dir); /* make the rename durable */
out:
    free(dir);
    free(tmp);
    return st;
}

eb_status eb_finetune_save(const eb_finetune *ft, const char *path) {
    if (!ft || !path) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_finetune_save: NULL argument");
    void *data = NULL;
    size_t size = 0;
    eb_status st = eb_finetune_serialize(ft, &data, &size);
    if (st != EB_OK) return st;
    st = eb_write_file_atomic(path, data, size);
    free(data);
    return st;
}

/* ---- training state (.brewstate) ------------------------------------------------------------
 * "EBST" u32 version, u32 name length + name, i64 num_output, kdim, spatial, has_bias,
 * solver, iter, current_step; then per blob float32 arrays: w, hist (and hist2 for Adam);
 * then u64 FNV-1a of everything before. Little-endian. */

#define STATE_MAGIC "EBST"
#define STATE_VERSION 1u

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

typedef struct sbuf {
    uint8_t *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const void *d, size_t n) {
    if (b->oom) return;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) cap *= 2;
        uint8_t *q = (uint8_t *)realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void sb_u64(sbuf *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    sb_put(b, x, 8);
}

static uint64_t rd_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

eb_status eb_finetune_save_state(const eb_finetune *ft, const char *path) {
    if (!ft || !path) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_finetune_save_state: NULL argument");
    sbuf b = {0};
    uint32_t nl = (uint32_t)strlen(ft->node->name);
    sb_put(&b, STATE_MAGIC, 4);
    uint8_t v4[4] = {STATE_VERSION, 0, 0, 0};
    sb_put(&b, v4, 4);
    uint8_t l4[4] = {(uint8_t)nl, (uint8_t)(nl >> 8), (uint8_t)(nl >> 16), (uint8_t)(nl >> 24)};
    sb_put(&b, l4, 4);
    sb_put(&b, ft->node->name, nl);
    sb_u64(&b, (uint64_t)ft->n_out);
    sb_u64(&b, (uint64_t)ft->kdim);
    sb_u64(&b, (uint64_t)ft->spatial);
    sb_u64(&b, (uint64_t)ft->has_bias);
    sb_u64(&b, (uint64_t)ft->opt.solver);
    sb_u64(&b, (uint64_t)ft->iter);
    sb_u64(&b, (uint64_t)ft->current_step);
    for (int p = 0; p < ft->n_params; p++) {
        const eb_param *pp = &ft->params[p];
        sb_put(&b, pp->w, (size_t)pp->count * 4);
        sb_put(&b, pp->hist, (size_t)pp->count * 4);
        if (pp->hist2) sb_put(&b, pp->hist2, (size_t)pp->count * 4);
    }
    if (b.oom) {
        free(b.p);
        return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
    }
    sb_u64(&b, fnv1a(b.p, b.len));
    eb_status st = b.oom ? eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory")
                         : eb_write_file_atomic(path, b.p, b.len);
    free(b.p);
    return st;
}

eb_status eb_finetune_load_state(eb_finetune *ft, const char *path) {
    if (!ft || !path) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_finetune_load_state: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f) return eb_set_error(EB_ERR_IO, "cannot open '%.300s': %s", path, strerror(errno));
    uint8_t *d = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 65536) {
            size_t nc = cap ? cap * 2 : 65536;
            uint8_t *q = (uint8_t *)realloc(d, nc);
            if (!q) {
                free(d);
                fclose(f);
                return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
            }
            d = q;
            cap = nc;
        }
        size_t k = fread(d + len, 1, cap - len, f);
        len += k;
        if (k == 0) break;
    }
    fclose(f);
    eb_status st = EB_OK;
#define SFAIL(...) do { st = eb_set_error(__VA_ARGS__); goto done; } while (0)
    if (len < 12 + 8 || memcmp(d, STATE_MAGIC, 4) != 0)
        SFAIL(EB_ERR_INVALID_ARGUMENT, "'%.300s' is not a fine-tuning state file", path);
    if (fnv1a(d, len - 8) != rd_u64(d + len - 8))
        SFAIL(EB_ERR_INVALID_ARGUMENT, "'%.300s': checksum mismatch (truncated or corrupted)", path);
    if (d[4] != STATE_VERSION || d[5] || d[6] || d[7])
        SFAIL(EB_ERR_UNSUPPORTED, "'%.300s': state version %u is not supported", path, (unsigned)d[4]);
    uint32_t nl = (uint32_t)d[8] | ((uint32_t)d[9] << 8) | ((uint32_t)d[10] << 16) | ((uint32_t)d[11] << 24);
    size_t pos = 12;
    if (nl > len - 8 - pos || len - 8 - pos - nl < 7 * 8)
        SFAIL(EB_ERR_INVALID_ARGUMENT, "'%.300s': truncated state", path);
    if (nl != strlen(ft->node->name) || memcmp(d + pos, ft->node->name, nl) != 0)
        SFAIL(EB_ERR_INVALID_ARGUMENT, "'%.300s' is the state of layer '%.*s', not '%.64s'", path,
              (int)(nl < 64 ? nl : 64), (const char *)(d + pos), ft->node->name);
    pos += nl;
    uint64_t hdr[7];
    for (int i = 0; i < 7; i++, pos += 8) hdr[i] = rd_u64(d + pos);
    if (hdr[0] != (uint64_t)ft->n_out || hdr[1] != (uint64_t)ft->kdim ||
        hdr[2] != (uint64_t)ft->spatial || hdr[3] != (uint64_t)ft->has_bias)
        SFAIL(EB_ERR_INVALID_ARGUMENT,
              "'%.300s': state of a %llu x %llu layer, this job trains %lld x %lld", path,
              (unsigned long long)hdr[0], (unsigned long long)hdr[1], (long long)ft->n_out,
              (long long)ft->kdim);
    if (hdr[4] != (uint64_t)ft->opt.solver)
        SFAIL(EB_ERR_INVALID_ARGUMENT, "'%.300s': state of another solver type", path);
    size_t need = 0;
    for (int p = 0; p < ft->n_params; p++)
        need += (size_t)ft->params[p].count * 4 * (ft->params[p].hist2 ? 3 : 2);
    if (len - 8 - pos != need) SFAIL(EB_ERR_INVALID_ARGUMENT, "'%.300s': wrong state size", path);
    for (int p = 0; p < ft->n_params; p++) {
        eb_param *pp = &ft->params[p];
        size_t nbytes = (size_t)pp->count * 4;
        memcpy(pp->w, d + pos, nbytes), pos += nbytes;
        memcpy(pp->hist, d + pos, nbytes), pos += nbytes;
        if (pp->hist2) memcpy(pp->hist2, d + pos, nbytes), pos += nbytes;
        memset(pp->diff, 0, (size_t)pp->count * sizeof(double));
    }
    ft->iter = (int64_t)hdr[5];
    ft->current_step = (int64_t)hdr[6];
done:
    free(d);
    return st;
#undef SFAIL
}
