/* The op registry: op code -> kernel.
 *
 * The kernels are declared weak while the op files are being written, so the library links
 * with some missing; a bundle using a missing one fails to load with EB_ERR_UNSUPPORTED, and
 * eb_missing_kernels() (core/diag.h) lists them. Define EB_STRONG_KERNELS to make every kernel
 * a hard link-time requirement (and to let a static libedgebrew.a pull the op objects in
 * without --whole-archive: a weak reference does not pull an archive member).
 */
#include <stdio.h>
#include <string.h>

#include "core.h"
#include "diag.h"

#if defined(EB_STRONG_KERNELS) || !defined(__GNUC__)
#define EB_KERNEL_DECL(sym) extern const eb_op_kernel sym
#else
#define EB_KERNEL_DECL(sym) extern const eb_op_kernel sym __attribute__((weak))
#endif

EB_KERNEL_DECL(eb_kernel_Convolution);
EB_KERNEL_DECL(eb_kernel_Deconvolution);
EB_KERNEL_DECL(eb_kernel_Pooling);
EB_KERNEL_DECL(eb_kernel_InnerProduct);
EB_KERNEL_DECL(eb_kernel_ReLU);
EB_KERNEL_DECL(eb_kernel_PReLU);
EB_KERNEL_DECL(eb_kernel_ELU);
EB_KERNEL_DECL(eb_kernel_Sigmoid);
EB_KERNEL_DECL(eb_kernel_TanH);
EB_KERNEL_DECL(eb_kernel_AbsVal);
EB_KERNEL_DECL(eb_kernel_BNLL);
EB_KERNEL_DECL(eb_kernel_Power);
EB_KERNEL_DECL(eb_kernel_Exp);
EB_KERNEL_DECL(eb_kernel_Log);
EB_KERNEL_DECL(eb_kernel_Threshold);
EB_KERNEL_DECL(eb_kernel_Clip);
EB_KERNEL_DECL(eb_kernel_Dropout);
EB_KERNEL_DECL(eb_kernel_BatchNorm);
EB_KERNEL_DECL(eb_kernel_Scale);
EB_KERNEL_DECL(eb_kernel_Bias);
EB_KERNEL_DECL(eb_kernel_LRN);
EB_KERNEL_DECL(eb_kernel_MVN);
EB_KERNEL_DECL(eb_kernel_Softmax);
EB_KERNEL_DECL(eb_kernel_Concat);
EB_KERNEL_DECL(eb_kernel_Slice);
EB_KERNEL_DECL(eb_kernel_Split);
EB_KERNEL_DECL(eb_kernel_Eltwise);
EB_KERNEL_DECL(eb_kernel_Flatten);
EB_KERNEL_DECL(eb_kernel_Reshape);
EB_KERNEL_DECL(eb_kernel_Crop);
EB_KERNEL_DECL(eb_kernel_Permute);
EB_KERNEL_DECL(eb_kernel_ArgMax);
EB_KERNEL_DECL(eb_kernel_Reduction);
EB_KERNEL_DECL(eb_kernel_Normalize);
EB_KERNEL_DECL(eb_kernel_PriorBox);
EB_KERNEL_DECL(eb_kernel_DetectionOutput);

/* Filled at first use: taking the address of an undefined weak symbol gives NULL, but only at
 * run time (it is not a constant expression for every toolchain), so the table is built in a
 * function. */
static const eb_op_kernel *kernel_of(int op_type) {
    switch (op_type) {
    case EB_OP_Convolution: return &eb_kernel_Convolution;
    case EB_OP_Deconvolution: return &eb_kernel_Deconvolution;
    case EB_OP_Pooling: return &eb_kernel_Pooling;
    case EB_OP_InnerProduct: return &eb_kernel_InnerProduct;
    case EB_OP_ReLU: return &eb_kernel_ReLU;
    case EB_OP_PReLU: return &eb_kernel_PReLU;
    case EB_OP_ELU: return &eb_kernel_ELU;
    case EB_OP_Sigmoid: return &eb_kernel_Sigmoid;
    case EB_OP_TanH: return &eb_kernel_TanH;
    case EB_OP_AbsVal: return &eb_kernel_AbsVal;
    case EB_OP_BNLL: return &eb_kernel_BNLL;
    case EB_OP_Power: return &eb_kernel_Power;
    case EB_OP_Exp: return &eb_kernel_Exp;
    case EB_OP_Log: return &eb_kernel_Log;
    case EB_OP_Threshold: return &eb_kernel_Threshold;
    case EB_OP_Clip: return &eb_kernel_Clip;
    case EB_OP_Dropout: return &eb_kernel_Dropout;
    case EB_OP_BatchNorm: return &eb_kernel_BatchNorm;
    case EB_OP_Scale: return &eb_kernel_Scale;
    case EB_OP_Bias: return &eb_kernel_Bias;
    case EB_OP_LRN: return &eb_kernel_LRN;
    case EB_OP_MVN: return &eb_kernel_MVN;
    case EB_OP_Softmax: return &eb_kernel_Softmax;
    case EB_OP_Concat: return &eb_kernel_Concat;
    case EB_OP_Slice: return &eb_kernel_Slice;
    case EB_OP_Split: return &eb_kernel_Split;
    case EB_OP_Eltwise: return &eb_kernel_Eltwise;
    case EB_OP_Flatten: return &eb_kernel_Flatten;
    case EB_OP_Reshape: return &eb_kernel_Reshape;
    case EB_OP_Crop: return &eb_kernel_Crop;
    case EB_OP_Permute: return &eb_kernel_Permute;
    case EB_OP_ArgMax: return &eb_kernel_ArgMax;
    case EB_OP_Reduction: return &eb_kernel_Reduction;
    case EB_OP_Normalize: return &eb_kernel_Normalize;
    case EB_OP_PriorBox: return &eb_kernel_PriorBox;
    case EB_OP_DetectionOutput: return &eb_kernel_DetectionOutput;
    default: return NULL;
    }
}

const eb_op_kernel *eb_find_kernel(int op_type) {
    if (op_type < 0 || op_type >= EB_NUM_OP_TYPES) return NULL;
    const eb_op_kernel *k = kernel_of(op_type);
    if (k == NULL || k->prepare == NULL || k->run == NULL) return NULL;
    return k;
}

int eb_missing_kernels(char *buf, size_t n) {
    int missing = 0;
    size_t used = 0;
    if (buf && n > 0) buf[0] = '\0';
    for (int t = 0; t < EB_NUM_OP_TYPES; t++) {
        if (eb_find_kernel(t) != NULL) continue;
        missing++;
        if (buf && n > used + 1) {
            int w = snprintf(buf + used, n - used, "%s%s", missing > 1 ? ", " : "",
                             eb_op_type_name(t));
            if (w < 0) break;
            used += (size_t)w;
            if (used >= n) used = n - 1; /* truncated; snprintf kept it terminated */
        }
    }
    return missing;
}
