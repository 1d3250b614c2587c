/* Private interface of the fine-tuning code (src/train/): solver math, losses, fillers, the
 * bundle re-serializer, and atomic file writes. The public API is eb_finetune_* in edgebrew.h. */
#ifndef EB_TRAIN_H
#define EB_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "edgebrew.h"

/* ---- solver.c ---- */
/* Caffe's SGDSolver::GetLearningRate at `iter`; *current_step is the multistep counter Caffe
 * keeps between calls (advanced by at most one step per call, as Caffe does). */
double eb_train_learning_rate(const eb_finetune_options *o, int64_t iter, int64_t *current_step);

/* One parameter blob being trained. */
typedef struct eb_param {
    int64_t count;
    float *w;        /* weights */
    double *diff;    /* accumulated gradient */
    float *hist;     /* momentum (Caffe's history_) */
    float *hist2;    /* Adam's second moment (NULL for SGD/Nesterov) */
    double lr_mult, decay_mult;
} eb_param;

/* Caffe's ApplyUpdate over `params` at iteration `iter` with learning rate `rate`:
 * ClipGradients, Normalize (1/iter_size), Regularize (L2/L1), ComputeUpdateValue, Update.
 * Zeroes the diffs afterwards. */
void eb_train_apply_update(const eb_finetune_options *o, eb_param *params, int n, double rate,
                           int64_t iter);

/* ---- loss.c ---- */
/* Softmax with loss over `batch` samples of `channels` x `inner` scores (Caffe's axis 1).
 * labels: batch x inner. Writes d(loss)/d(scores) into grad (may be NULL) and returns the
 * normalized loss; *n_correct / *n_valid count top-1 hits over non-ignored labels (may be
 * NULL). Labels were validated by the caller. */
double eb_train_softmax_loss(const double *scores, const float *labels, int64_t batch,
                             int64_t channels, int64_t inner, int normalization,
                             int has_ignore, int64_t ignore_label, double *grad,
                             int64_t *n_correct, int64_t *n_valid);
/* EuclideanLoss: sum((y - t)^2) / (2 batch); grad = (y - t) / batch. */
double eb_train_euclidean_loss(const double *scores, const float *targets, int64_t batch,
                               int64_t per_sample, double *grad);

/* ---- filler.c ---- */
typedef struct eb_rng {
    uint64_t s;
} eb_rng;
void eb_rng_seed(eb_rng *r, uint64_t seed);
/* Caffe's filler semantics over a blob of `shape` (dims[0] = num outputs). */
eb_status eb_train_fill(const eb_filler *f, eb_rng *rng, float *data, int ndim,
                        const int64_t *dims, const char *what);

/* ---- quant.c: the trained layer of an int8 / fp16 bundle ---- */
/* The converter's re-quantization (quantizer._weight_int8 / _quantize_weights) of n x k float32
 * weights w and n biases b (may be NULL) behind an input of scale s_in: per-channel int8 qw,
 * int32 qb (when b), float32 scale. Weights must be finite. */
void eb_tq_quantize_weights(const float *w, const float *b, int64_t n, int64_t k, float s_in,
                            int8_t *qw, int32_t *qb, float *scale);
/* 1 when every |v| <= 65504 (the blob can be stored as float16, as quantizer.to_fp16 decides) */
int eb_train_fits_half(const float *v, int64_t n);

/* ---- bundle_writer.c ---- */
/* What changes when the tuned model is written back. */
typedef struct eb_rewrite {
    int n_tensors;
    /* per tensor: 1 when its shape (and maybe arena slot) changes */
    const uint8_t *changed;
    const int64_t (*new_dims)[EB_MAX_DIMS];
    const int *new_ndim;
    const int64_t *new_arena_offset;   /* activations; ignored for constants */
    uint64_t new_arena_size;
    /* constants whose bytes are replaced: tensor index -> (data, bytes) */
    int n_replace;
    const int *replace_tensor;
    const void *const *replace_data;
    const uint64_t *replace_bytes;
    const int *replace_dtype;          /* per replaced tensor: its new eb_dtype, or -1 to keep
                                          (NULL: keep all) */
    /* tensors whose Tensor.quant is replaced: count 0 drops it; else `count` scales with zero
     * points 0 on `axis` */
    int n_quant;
    const int *quant_tensor;
    const float *const *quant_scale;
    const int *quant_count;
    const int *quant_axis;
    /* the trained op */
    int op_index;
    int64_t num_output;                /* written as its num_output attribute */
    int write_mults;
    float mults[4];                    /* (lr, decay) x (weight, bias) */
    int n_mults;
    /* metadata */
    int replace_labels;                /* 1: write `labels` instead of the bundle's */
    const char *const *labels;
    int n_labels;
    const char *extra_finetune_json;   /* appended as key "finetune" of metadata.extra */
} eb_rewrite;

/* Re-serializes the (verified) bundle bytes with the changes in `rw`. *out is malloc'd. */
eb_status eb_bundle_rewrite(const uint8_t *data, size_t size, const eb_rewrite *rw,
                            uint8_t **out, size_t *out_size);

/* The dtype (eb_dtype) tensor `ti` has in the bundle bytes (a FLOAT16 constant is FLOAT32
 * once loaded), or -1. */
int eb_bundle_tensor_dtype(const uint8_t *data, size_t size, int ti);

/* Reads the Op.param_mults of op `op_index` of the bundle: up to `max` floats. */
int eb_bundle_op_param_mults(const uint8_t *data, size_t size, int op_index, float *out,
                             int max);

#endif /* EB_TRAIN_H */
