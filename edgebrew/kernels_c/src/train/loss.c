/* Caffe's SoftmaxWithLossLayer (axis 1, normalization modes, ignore_label) and
 * EuclideanLossLayer, forward and backward, in double. */
#include <float.h>
#include <math.h>

#include "train.h"

double eb_train_softmax_loss(const double *scores, const float *labels, int64_t batch,
                             int64_t channels, int64_t inner, int normalization,
                             int has_ignore, int64_t ignore_label, double *grad,
                             int64_t *n_correct, int64_t *n_valid) {
    double loss = 0;
    int64_t valid = 0, correct = 0;
    for (int64_t b = 0; b < batch; b++) {
        const double *x = scores + b * channels * inner;
        double *g = grad ? grad + b * channels * inner : NULL;
        for (int64_t s = 0; s < inner; s++) {
            const int64_t label = (int64_t)labels[b * inner + s];
            double mx = x[s];
            int64_t arg = 0;
            for (int64_t c = 1; c < channels; c++)
                if (x[c * inner + s] > mx) mx = x[c * inner + s], arg = c;
            if (has_ignore && label == ignore_label) {
                if (g)
                    for (int64_t c = 0; c < channels; c++) g[c * inner + s] = 0;
                continue;
            }
            double sum = 0;
            for (int64_t c = 0; c < channels; c++) sum += exp(x[c * inner + s] - mx);
            const double p_label = exp(x[label * inner + s] - mx) / sum;
            loss -= log(p_label > FLT_MIN ? p_label : FLT_MIN);
            if (g)
                for (int64_t c = 0; c < channels; c++)
                    g[c * inner + s] = exp(x[c * inner + s] - mx) / sum - (c == label ? 1.0 : 0.0);
            valid++;
            if (arg == label) correct++;
        }
    }
    double normalizer;
    switch (normalization) {
    case EB_NORM_FULL: normalizer = (double)(batch * inner); break;
    case EB_NORM_BATCH_SIZE: normalizer = (double)batch; break;
    case EB_NORM_NONE: normalizer = 1.0; break;
    default: normalizer = (double)valid; break; /* VALID */
    }
    if (normalizer < 1.0) normalizer = 1.0;
    if (grad)
        for (int64_t i = 0; i < batch * channels * inner; i++) grad[i] /= normalizer;
    if (n_correct) *n_correct = correct;
    if (n_valid) *n_valid = valid;
    return loss / normalizer;
}

double eb_train_euclidean_loss(const double *scores, const float *targets, int64_t batch,
                               int64_t per_sample, double *grad) {
    double sum = 0;
    const double num = batch > 0 ? (double)batch : 1.0;
    for (int64_t i = 0; i < batch * per_sample; i++) {
        const double d = scores[i] - (double)targets[i];
        sum += d * d;
        if (grad) grad[i] = d / num;
    }
    return sum / num / 2.0;
}
