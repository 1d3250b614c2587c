/* Caffe's solvers (sgd_solver.cpp, nesterov_solver.cpp, adam_solver.cpp), CPU path, exactly:
 * learning-rate policies, gradient clipping, iter_size normalization, L2/L1 regularization,
 * the update value, and w -= update. Gradients are accumulated in double; weights and
 * momentum are stored in float, as Caffe's blobs. */
#include <math.h>
#include <string.h>

#include "train.h"

double eb_train_learning_rate(const eb_finetune_options *o, int64_t iter, int64_t *current_step) {
    const double base = o->base_lr, gamma = o->gamma, power = o->power;
    switch (o->lr_policy) {
    case EB_LR_FIXED:
        return base;
    case EB_LR_STEP: {
        int64_t step = o->stepsize > 0 ? iter / o->stepsize : 0;
        return base * pow(gamma, (double)step);
    }
    case EB_LR_EXP:
        return base * pow(gamma, (double)iter);
    case EB_LR_INV:
        return base * pow(1.0 + gamma * (double)iter, -power);
    case EB_LR_MULTISTEP:
        if (*current_step < o->n_stepvalue && iter >= o->stepvalue[*current_step])
            (*current_step)++;
        return base * pow(gamma, (double)*current_step);
    case EB_LR_POLY:
        return base * pow(1.0 - (double)iter / (double)o->max_iter, power);
    case EB_LR_SIGMOID:
        return base * (1.0 / (1.0 + exp(-gamma * ((double)iter - (double)o->stepsize))));
    }
    return base;
}

void eb_train_apply_update(const eb_finetune_options *o, eb_param *params, int n, double rate,
                           int64_t iter) {
    /* ClipGradients: over every learnable blob */
    if (o->clip_gradients >= 0) {
        double sumsq = 0;
        for (int p = 0; p < n; p++)
            for (int64_t i = 0; i < params[p].count; i++)
                sumsq += params[p].diff[i] * params[p].diff[i];
        double l2norm = sqrt(sumsq);
        if (l2norm > o->clip_gradients) {
            double scale = o->clip_gradients / l2norm;
            for (int p = 0; p < n; p++)
                for (int64_t i = 0; i < params[p].count; i++) params[p].diff[i] *= scale;
        }
    }
    const double momentum = o->momentum;
    for (int p = 0; p < n; p++) {
        eb_param *pp = &params[p];
        const double local_rate = rate * pp->lr_mult;
        const double local_decay = o->weight_decay * pp->decay_mult;
        const double norm = o->iter_size > 1 ? 1.0 / (double)o->iter_size : 1.0;
        /* Adam's bias correction */
        double correction = 0;
        if (o->solver == EB_SOLVER_ADAM) {
            const double t = (double)(iter + 1);
            correction = sqrt(1.0 - pow(o->momentum2, t)) / (1.0 - pow(momentum, t));
        }
        for (int64_t i = 0; i < pp->count; i++) {
            double g = pp->diff[i] * norm;                     /* Normalize */
            const double w = pp->w[i];
            if (local_decay != 0) {                            /* Regularize */
                if (o->l1)
                    g += local_decay * (double)((w > 0) - (w < 0));
                else
                    g += local_decay * w;
            }
            double update;                                     /* ComputeUpdateValue */
            if (o->solver == EB_SOLVER_ADAM) {
                float m = (float)(momentum * pp->hist[i] + (1.0 - momentum) * g);
                float v = (float)(o->momentum2 * pp->hist2[i] + (1.0 - o->momentum2) * g * g);
                pp->hist[i] = m;
                pp->hist2[i] = v;
                update = local_rate * correction * (double)m / (sqrt((double)v) + o->delta);
            } else if (o->solver == EB_SOLVER_NESTEROV) {
                const double prev = pp->hist[i];
                float h = (float)(momentum * prev + local_rate * g);
                pp->hist[i] = h;
                update = (1.0 + momentum) * (double)h - momentum * prev;
            } else {
                float h = (float)(momentum * pp->hist[i] + local_rate * g);
                pp->hist[i] = h;
                update = h;
            }
            pp->w[i] = (float)(w - (double)(float)update);     /* Update */
        }
        memset(pp->diff, 0, (size_t)pp->count * sizeof(double));
    }
}
