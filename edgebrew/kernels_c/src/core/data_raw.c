/* eb_data_raw (op.h): a tensor's bytes for this run, untyped, for the int8 kernels. Kept out of
 * session.c so that file stays float-only; same rules as eb_data. */
#include "core.h"

void *eb_data_raw(eb_exec *ex, const eb_tensor *t) {
    if (!t) return NULL;
    if (t->is_constant) return (void *)(uintptr_t)t->const_data; /* kernels never write it */
    if (!ex || !ex->arena) return NULL;
    return (void *)(ex->arena + t->arena_offset);
}
