/* Private diagnostics for tests (not part of the public API). */
#ifndef EB_DIAG_H
#define EB_DIAG_H

#include <stddef.h>

/* Op types whose kernel is not linked into this build. Writes their names, comma-separated,
 * into buf (always NUL-terminated when n > 0; truncated to fit) and returns how many are
 * missing (0: every op type has a kernel). buf may be NULL when n == 0. */
int eb_missing_kernels(char *buf, size_t n);

#endif /* EB_DIAG_H */
