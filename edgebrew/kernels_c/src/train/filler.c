/* Caffe's fillers (filler.hpp) with a seeded generator (splitmix64; Box-Muller normals):
 * constant, uniform, gaussian, xavier (uniform +-sqrt(3/n)), msra (normal, std sqrt(2/n)),
 * with n = fan_in (count / dims[0]), fan_out (count / dims[1]) or their average. */
#include <math.h>

#include "core/core.h"
#include "train.h"

void eb_rng_seed(eb_rng *r, uint64_t seed) { r->s = seed ^ 0x9E3779B97F4A7C15ull; }

static uint64_t next_u64(eb_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) */
static double next_unit(eb_rng *r) { return (double)(next_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

static double next_normal(eb_rng *r) {
    double u1 = next_unit(r), u2 = next_unit(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

eb_status eb_train_fill(const eb_filler *f, eb_rng *rng, float *data, int ndim,
                        const int64_t *dims, const char *what) {
    int64_t count = 1;
    for (int d = 0; d < ndim; d++) count *= dims[d];
    double fan_in = ndim >= 1 && dims[0] > 0 ? (double)count / (double)dims[0] : 1.0;
    double fan_out = ndim >= 2 && dims[1] > 0 ? (double)count / (double)dims[1] : 1.0;
    double n = fan_in;
    if (f->variance_norm == EB_VN_FAN_OUT) n = fan_out;
    else if (f->variance_norm == EB_VN_AVERAGE) n = (fan_in + fan_out) / 2.0;
    switch (f->type) {
    case EB_FILLER_CONSTANT:
        for (int64_t i = 0; i < count; i++) data[i] = (float)f->value;
        return EB_OK;
    case EB_FILLER_UNIFORM:
        if (!(f->max >= f->min))
            return eb_set_error(EB_ERR_INVALID_ARGUMENT, "%s filler: uniform max < min", what);
        for (int64_t i = 0; i < count; i++)
            data[i] = (float)(f->min + (f->max - f->min) * next_unit(rng));
        return EB_OK;
    case EB_FILLER_GAUSSIAN:
        if (!(f->std >= 0))
            return eb_set_error(EB_ERR_INVALID_ARGUMENT, "%s filler: gaussian std < 0", what);
        for (int64_t i = 0; i < count; i++) data[i] = (float)(f->mean + f->std * next_normal(rng));
        return EB_OK;
    case EB_FILLER_XAVIER: {
        double a = sqrt(3.0 / n);
        for (int64_t i = 0; i < count; i++) data[i] = (float)(-a + 2.0 * a * next_unit(rng));
        return EB_OK;
    }
    case EB_FILLER_MSRA: {
        double std = sqrt(2.0 / n);
        for (int64_t i = 0; i < count; i++) data[i] = (float)(std * next_normal(rng));
        return EB_OK;
    }
    }
    return eb_set_error(EB_ERR_INVALID_ARGUMENT, "%s filler: unknown type %d", what, f->type);
}
