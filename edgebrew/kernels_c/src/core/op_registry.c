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

/* Indexed by EB_OP_*; a missing (weak, undefined) kernel's address is NULL. */
static const eb_op_kernel *const kernels[EB_NUM_OP_TYPES] = {
    [EB_OP_Convolution] = &eb_kernel_Convolution,
    [EB_OP_Deconvolution] = &eb_kernel_Deconvolution,
    [EB_OP_Pooling] = &eb_kernel_Pooling,
    [EB_OP_InnerProduct] = &eb_kernel_InnerProduct,
    [EB_OP_ReLU] = &eb_kernel_ReLU,
    [EB_OP_PReLU] = &eb_kernel_PReLU,
    [EB_OP_ELU] = &eb_kernel_ELU,
    [EB_OP_Sigmoid] = &eb_kernel_Sigmoid,
    [EB_OP_TanH] = &eb_kernel_TanH,
    [EB_OP_AbsVal] = &eb_kernel_AbsVal,
    [EB_OP_BNLL] = &eb_kernel_BNLL,
    [EB_OP_Power] = &eb_kernel_Power,
    [EB_OP_Exp] = &eb_kernel_Exp,
    [EB_OP_Log] = &eb_kernel_Log,
    [EB_OP_Threshold] = &eb_kernel_Threshold,
    [EB_OP_Clip] = &eb_kernel_Clip,
    [EB_OP_Dropout] = &eb_kernel_Dropout,
    [EB_OP_BatchNorm] = &eb_kernel_BatchNorm,
    [EB_OP_Scale] = &eb_kernel_Scale,
    [EB_OP_Bias] = &eb_kernel_Bias,
    [EB_OP_LRN] = &eb_kernel_LRN,
    [EB_OP_MVN] = &eb_kernel_MVN,
    [EB_OP_Softmax] = &eb_kernel_Softmax,
    [EB_OP_Concat] = &eb_kernel_Concat,
    [EB_OP_Slice] = &eb_kernel_Slice,
    [EB_OP_Split] = &eb_kernel_Split,
    [EB_OP_Eltwise] = &eb_kernel_Eltwise,
    [EB_OP_Flatten] = &eb_kernel_Flatten,
    [EB_OP_Reshape] = &eb_kernel_Reshape,
    [EB_OP_Crop] = &eb_kernel_Crop,
    [EB_OP_Permute] = &eb_kernel_Permute,
    [EB_OP_ArgMax] = &eb_kernel_ArgMax,
    [EB_OP_Reduction] = &eb_kernel_Reduction,
    [EB_OP_Normalize] = &eb_kernel_Normalize,
    [EB_OP_PriorBox] = &eb_kernel_PriorBox,
    [EB_OP_DetectionOutput] = &eb_kernel_DetectionOutput,
};

/* int8 kernels (src/ops/int8/): ops whose first input or output is INT8, and the borders. */
EB_KERNEL_DECL(eb_int8_kernel_Quantize);
EB_KERNEL_DECL(eb_int8_kernel_Dequantize);
EB_KERNEL_DECL(eb_int8_kernel_Convolution);
EB_KERNEL_DECL(eb_int8_kernel_InnerProduct);
EB_KERNEL_DECL(eb_int8_kernel_Pooling);
EB_KERNEL_DECL(eb_int8_kernel_Eltwise);
EB_KERNEL_DECL(eb_int8_kernel_Concat);
EB_KERNEL_DECL(eb_int8_kernel_ReLU);
EB_KERNEL_DECL(eb_int8_kernel_Flatten);
EB_KERNEL_DECL(eb_int8_kernel_Reshape);
EB_KERNEL_DECL(eb_int8_kernel_Split);
EB_KERNEL_DECL(eb_int8_kernel_Slice);
EB_KERNEL_DECL(eb_int8_kernel_Dropout);

static const eb_op_kernel *const int8_kernels[EB_NUM_OP_TYPES] = {
    [EB_OP_Quantize] = &eb_int8_kernel_Quantize,
    [EB_OP_Dequantize] = &eb_int8_kernel_Dequantize,
    [EB_OP_Convolution] = &eb_int8_kernel_Convolution,
    [EB_OP_InnerProduct] = &eb_int8_kernel_InnerProduct,
    [EB_OP_Pooling] = &eb_int8_kernel_Pooling,
    [EB_OP_Eltwise] = &eb_int8_kernel_Eltwise,
    [EB_OP_Concat] = &eb_int8_kernel_Concat,
    [EB_OP_ReLU] = &eb_int8_kernel_ReLU,
    [EB_OP_Flatten] = &eb_int8_kernel_Flatten,
    [EB_OP_Reshape] = &eb_int8_kernel_Reshape,
    [EB_OP_Split] = &eb_int8_kernel_Split,
    [EB_OP_Slice] = &eb_int8_kernel_Slice,
    [EB_OP_Dropout] = &eb_int8_kernel_Dropout,
};

const eb_op_kernel *eb_find_int8_kernel(int op_type) {
    if (op_type < 0 || op_type >= EB_NUM_OP_TYPES) return NULL;
    const eb_op_kernel *k = int8_kernels[op_type];
    if (k == NULL || k->prepare == NULL || k->run == NULL) return NULL;
    return k;
}

const eb_op_kernel *eb_find_kernel(int op_type) {
    if (op_type < 0 || op_type >= EB_NUM_OP_TYPES) return NULL;
    const eb_op_kernel *k = kernels[op_type];
    if (k == NULL || k->prepare == NULL || k->run == NULL) return NULL;
    return k;
}

int eb_missing_kernels(char *buf, size_t n) {
    int missing = 0;
    size_t used = 0;
    if (buf && n > 0) buf[0] = '\0';
    for (int t = 0; t < EB_NUM_OP_TYPES; t++) {
        /* Quantize / Dequantize exist in int8 form only */
        const int int8_only = t == EB_OP_Quantize || t == EB_OP_Dequantize;
        const eb_op_kernel *k = int8_only ? eb_find_int8_kernel(t) : eb_find_kernel(t);
        const char *name = eb_op_type_name(t);
        int misnamed = k != NULL && (k->type_name == NULL || strcmp(k->type_name, name) != 0);
        if (k != NULL && !misnamed) continue;
        missing++;
        if (buf && n > used + 1) {
            int w = snprintf(buf + used, n - used, "%s%s%s", missing > 1 ? ", " : "", name,
                             misnamed ? " (kernel's type_name differs)" : "");
            if (w < 0) break;
            used += (size_t)w;
            if (used >= n) used = n - 1; /* truncated; snprintf kept it terminated */
        }
    }
    return missing;
}
