/* Thread-local last error, status names, version, op type names. */
#include <stdarg.h>
#include <stdio.h>

#include "core.h"

static _Thread_local char tl_last_error[512];

eb_status eb_set_error(eb_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_last_error, sizeof tl_last_error, fmt, ap);
    va_end(ap);
    if (tl_last_error[0] == '\0') snprintf(tl_last_error, sizeof tl_last_error, "%s",
                                           eb_status_name(status));
    /* Names quoted from a hostile bundle may hold control bytes: keep messages one clean line. */
    for (char *p = tl_last_error; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f) *p = '?';
    return status;
}

const char *eb_last_error(void) { return tl_last_error; }

const char *eb_version(void) { return EB_VERSION_STRING; }

const char *eb_status_name(eb_status status) {
    switch (status) {
    case EB_OK: return "EB_OK";
    case EB_ERR_INVALID_ARGUMENT: return "EB_ERR_INVALID_ARGUMENT";
    case EB_ERR_INVALID_BUNDLE: return "EB_ERR_INVALID_BUNDLE";
    case EB_ERR_UNSUPPORTED: return "EB_ERR_UNSUPPORTED";
    case EB_ERR_OUT_OF_MEMORY: return "EB_ERR_OUT_OF_MEMORY";
    case EB_ERR_IO: return "EB_ERR_IO";
    case EB_ERR_RUNTIME: return "EB_ERR_RUNTIME";
    }
    return "EB_ERR_UNKNOWN";
}

static const char *const op_names[EB_NUM_OP_TYPES] = {
    "Convolution", "Deconvolution", "Pooling", "InnerProduct", "ReLU", "PReLU", "ELU",
    "Sigmoid", "TanH", "AbsVal", "BNLL", "Power", "Exp", "Log", "Threshold", "Clip", "Dropout",
    "BatchNorm", "Scale", "Bias", "LRN", "MVN", "Softmax", "Concat", "Slice", "Split",
    "Eltwise", "Flatten", "Reshape", "Crop", "Permute", "ArgMax", "Reduction", "Normalize",
    "PriorBox", "DetectionOutput", "Quantize", "Dequantize",
};

const char *eb_op_type_name(int op_type) {
    if (op_type < 0 || op_type >= EB_NUM_OP_TYPES) return "?";
    return op_names[op_type];
}
