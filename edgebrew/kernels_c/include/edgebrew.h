/* libedgebrew: runs a .brew bundle on the CPU. C11; depends on libc, libm and pthreads only.
 *
 * One eb_model (immutable, shareable across threads) holds the verified bundle; each thread
 * that runs it uses its own eb_session (activation arena, scratch, thread pool). Every function
 * returns an eb_status; on failure eb_last_error() (thread-local) says what went wrong, naming
 * the op, tensor or field involved. No byte string given to the loaders can crash the library.
 */
#ifndef EDGEBREW_H
#define EDGEBREW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EB_MAX_DIMS 8

typedef enum eb_status {
    EB_OK = 0,
    EB_ERR_INVALID_ARGUMENT = 1, /* bad call: NULL handle, unknown name, wrong shape or count */
    EB_ERR_INVALID_BUNDLE = 2,   /* the bytes are not a valid bundle (verification failed) */
    EB_ERR_UNSUPPORTED = 3,      /* a valid bundle using something this build cannot run */
    EB_ERR_OUT_OF_MEMORY = 4,
    EB_ERR_IO = 5,               /* file could not be opened / mapped */
    EB_ERR_RUNTIME = 6           /* failure while running (should not happen on a verified model) */
} eb_status;

typedef enum eb_dtype {
    EB_FLOAT32 = 0, EB_FLOAT16 = 1, EB_INT8 = 2, EB_UINT8 = 3, EB_INT32 = 4
} eb_dtype;

typedef struct eb_model eb_model;
typedef struct eb_session eb_session;

typedef struct eb_session_options {
    int threads; /* worker threads for the heavy ops; <= 1 runs on the calling thread */
} eb_session_options;

/* Library version string, e.g. "0.1.0". */
const char *eb_version(void);
/* The message of the last failed call on this thread ("" if none). */
const char *eb_last_error(void);
/* Name of a status code, e.g. "EB_ERR_INVALID_BUNDLE". */
const char *eb_status_name(eb_status status);

/* Load from memory. copy != 0 copies the bytes; copy == 0 uses them in place, and the caller
 * keeps them alive and unchanged until eb_model_free. The bundle is verified before use. */
eb_status eb_model_load_memory(const void *data, size_t size, int copy, eb_model **out);
/* Load from a file, mapped read-only (weights are used in place). */
eb_status eb_model_load_file(const char *path, eb_model **out);
void eb_model_free(eb_model *model);

int eb_model_num_inputs(const eb_model *model);
int eb_model_num_outputs(const eb_model *model);
/* Tensor descriptions; `which` is 0 for inputs, 1 for outputs. Returns NULL/-1 on bad index. */
const char *eb_model_io_name(const eb_model *model, int which, int index);
int eb_model_io_shape(const eb_model *model, int which, int index, int64_t dims[EB_MAX_DIMS]);
eb_dtype eb_model_io_dtype(const eb_model *model, int which, int index);
/* Index of the input/output called `name`, or -1. */
int eb_model_find_io(const eb_model *model, int which, const char *name);
/* Bytes of the activation arena each session allocates (from the bundle's memory plan). */
size_t eb_model_arena_size(const eb_model *model);
int eb_model_num_ops(const eb_model *model);

eb_status eb_session_create(const eb_model *model, const eb_session_options *options,
                            eb_session **out);
void eb_session_free(eb_session *session);
/* Copy `count` float32 values into input `index`; count must equal the input's element count.
 * Set every input before each run: the memory plan reuses an input's bytes once no op reads it
 * any more, so after a run the inputs hold other data. */
eb_status eb_session_set_input(eb_session *session, int index, const float *data, size_t count);
/* Run every op. Allocates nothing. */
eb_status eb_session_run(eb_session *session);
/* Output `index`: a pointer valid until the next run or eb_session_free, and its element count.
 * Its shape: eb_session_output_shape (data-dependent outputs such as detections may be
 * smaller than the model's declared shape). */
eb_status eb_session_get_output(eb_session *session, int index, const float **data,
                                size_t *count);
int eb_session_output_shape(const eb_session *session, int index, int64_t dims[EB_MAX_DIMS]);

/* ---- Fine-tuning the last layer on the device (src/train/) -------------------------------
 *
 * Caffe's "learn the last layer first": every op but one trainable layer (an InnerProduct, or a
 * 1x1 Convolution with stride 1, no padding, one group) is frozen; the frozen trunk's features
 * are computed once (eb_finetune_features) and the layer is trained on them with Caffe's
 * SGDSolver semantics and SoftmaxWithLoss (or EuclideanLoss). The result is saved as a new
 * bundle (atomically: temporary file in the same folder, fsync, rename). Weights are in Caffe's
 * layout: W is num_output x K, b is num_output. A sample is one item of the model input's batch
 * dimension; per sample the layer sees K = C x S features (S = spatial positions of a 1x1
 * Convolution's input, 1 for an InnerProduct) and predicts num_output x S values.
 * The layer trains in float32 whatever the bundle stores: fp16 weights are saved as float16
 * again; an int8 layer (int8 input/output, per-channel int8 weights, int32 bias) starts from
 * its dequantized weights, its features are the dequantized int8 input, and it is re-quantized
 * on save as the converter does, keeping the input/output quantization (calibration). */
typedef struct eb_finetune eb_finetune;

typedef enum eb_lr_policy {
    EB_LR_FIXED = 0, EB_LR_STEP = 1, EB_LR_EXP = 2, EB_LR_INV = 3, EB_LR_MULTISTEP = 4,
    EB_LR_POLY = 5, EB_LR_SIGMOID = 6
} eb_lr_policy;

typedef enum eb_solver_type { EB_SOLVER_SGD = 0, EB_SOLVER_NESTEROV = 1, EB_SOLVER_ADAM = 2 } eb_solver_type;
typedef enum eb_loss_type { EB_LOSS_SOFTMAX = 0, EB_LOSS_EUCLIDEAN = 1 } eb_loss_type;
/* Caffe's LossParameter.NormalizationMode numbers. */
typedef enum eb_loss_norm {
    EB_NORM_FULL = 0, EB_NORM_VALID = 1, EB_NORM_BATCH_SIZE = 2, EB_NORM_NONE = 3
} eb_loss_norm;
typedef enum eb_filler_type {
    EB_FILLER_XAVIER = 0, EB_FILLER_GAUSSIAN = 1, EB_FILLER_CONSTANT = 2, EB_FILLER_MSRA = 3,
    EB_FILLER_UNIFORM = 4
} eb_filler_type;
/* Caffe's FillerParameter.VarianceNorm numbers. */
typedef enum eb_variance_norm { EB_VN_FAN_IN = 0, EB_VN_FAN_OUT = 1, EB_VN_AVERAGE = 2 } eb_variance_norm;

typedef struct eb_filler {
    int type;            /* eb_filler_type */
    double value;        /* constant */
    double mean, std;    /* gaussian */
    double min, max;     /* uniform */
    int variance_norm;   /* xavier, msra */
} eb_filler;

#define EB_MAX_STEPVALUES 32

typedef struct eb_finetune_options {
    const char *layer;        /* NULL or "": the last InnerProduct / 1x1 Convolution */
    int64_t num_output;       /* 0: keep the layer's; else re-initialize with this many outputs */
    int reinit;               /* re-initialize even when num_output is kept */
    eb_filler weight_filler;  /* default xavier (FAN_IN) */
    eb_filler bias_filler;    /* default constant 0 */
    uint64_t seed;            /* fillers' random generator */
    const char *const *labels;/* n_labels class names stored in the new bundle's metadata; */
    int n_labels;             /* 0: keep the bundle's (dropped when num_output changes) */

    int solver;               /* eb_solver_type */
    double base_lr, momentum, weight_decay;
    double momentum2, delta;  /* Adam's beta2 and epsilon */
    int l1;                   /* regularization: 0 L2 (Caffe's default), 1 L1 */
    int lr_policy;            /* eb_lr_policy */
    double gamma, power;
    int64_t stepsize, max_iter;
    int64_t stepvalue[32];     /* EB_MAX_STEPVALUES */
    int n_stepvalue;
    double clip_gradients;    /* < 0: off */
    int iter_size;            /* forward/backward passes accumulated per update (>= 1) */
    /* Per blob (weight, bias) lr_mult/decay_mult: given (mults_given bit 0: lr_mult, bit 1:
     * decay_mult), else the bundle's (the prototxt's `param` specs), else Caffe's 1/1. */
    int mults_given;
    double lr_mult[2], decay_mult[2];

    int loss;                 /* eb_loss_type */
    int normalization;        /* eb_loss_norm (SoftmaxWithLoss), default VALID */
    int has_ignore_label;
    int64_t ignore_label;
    int threads;              /* of the session running the frozen trunk */
} eb_finetune_options;

/* Caffe's defaults: SGD, base_lr 0.01, momentum 0.9, weight_decay 5e-4, fixed, iter_size 1,
 * clip off, VALID, xavier / constant 0. */
void eb_finetune_default_options(eb_finetune_options *options);
eb_status eb_finetune_create(const eb_model *model, const eb_finetune_options *options,
                             eb_finetune **out);
void eb_finetune_free(eb_finetune *ft);
/* The trainable layer's name; K (features per sample), num_output, S (spatial positions). */
const char *eb_finetune_layer(const eb_finetune *ft);
int64_t eb_finetune_feature_size(const eb_finetune *ft);
int64_t eb_finetune_num_output(const eb_finetune *ft);
int64_t eb_finetune_spatial(const eb_finetune *ft);
/* Inputs of the model's single input (n samples, each the input's shape without the batch
 * dimension, float32) -> the trunk's features for the layer, n x K floats. */
eb_status eb_finetune_features(eb_finetune *ft, const float *inputs, size_t n, float *features);
/* One solver iteration on n samples (n % iter_size == 0: split into iter_size passes whose
 * gradients accumulate). labels: SoftmaxWithLoss n x S class indices (as floats, Caffe's
 * convention); EuclideanLoss n x num_output x S targets. *loss: the mean of the passes' losses
 * before the update (Caffe's reported loss). `features` NULL: use `inputs` through the trunk. */
eb_status eb_finetune_step(eb_finetune *ft, const float *features, const float *labels,
                           size_t n, float *loss);
eb_status eb_finetune_step_inputs(eb_finetune *ft, const float *inputs, const float *labels,
                                  size_t n, float *loss);
/* Forward only: the mean loss (normalized over all n at once) and accuracy (SoftmaxWithLoss:
 * top-1 over non-ignored labels; EuclideanLoss: 0). scores (n x num_output x S) may be NULL.
 * The head runs as it will be saved: an int8 layer re-quantized, in the int8 kernels' integer
 * arithmetic (scores are its dequantized output); an fp16 layer with float16-rounded weights. */
eb_status eb_finetune_evaluate(eb_finetune *ft, const float *features, const float *labels,
                               size_t n, float *loss, float *accuracy, float *scores);
int64_t eb_finetune_iter(const eb_finetune *ft);
/* Caffe's GetLearningRate at the current iteration. */
double eb_finetune_learning_rate(const eb_finetune *ft);
/* Copy out / set the layer's weights (w_count = num_output x K, b_count = num_output, or 0
 * when the layer has no bias). */
eb_status eb_finetune_get_weights(const eb_finetune *ft, float *w, size_t w_count, float *b,
                                  size_t b_count);
eb_status eb_finetune_set_weights(eb_finetune *ft, const float *w, size_t w_count,
                                  const float *b, size_t b_count);
/* The tuned model as bundle bytes (malloc'd; release with eb_free), or saved atomically. */
eb_status eb_finetune_serialize(const eb_finetune *ft, void **data, size_t *size);
eb_status eb_finetune_save(const eb_finetune *ft, const char *path);
/* Training state (iteration, weights, momentum/Adam buffers) in a .brewstate file, saved
 * atomically; loading checks that the layer and shapes match. */
eb_status eb_finetune_save_state(const eb_finetune *ft, const char *path);
eb_status eb_finetune_load_state(eb_finetune *ft, const char *path);
/* Writes bytes to path atomically (temporary file in the same folder, fsync, rename). */
eb_status eb_write_file_atomic(const char *path, const void *data, size_t size);
void eb_free(void *p);

#ifdef __cplusplus
}
#endif
#endif /* EDGEBREW_H */
