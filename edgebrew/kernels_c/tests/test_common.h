/* Shared bits of the C test program (edgebrew_test). */
#ifndef EB_TEST_COMMON_H
#define EB_TEST_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int eb_t_passed, eb_t_failed;

/* A check that records a failure (with a message) and goes on. */
#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (cond) {                                                                            \
            eb_t_passed++;                                                                     \
        } else {                                                                               \
            eb_t_failed++;                                                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                               \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
        }                                                                                      \
    } while (0)

/* test_core.c: built-in checks of the core on hand-built and corrupted buffers. */
void eb_test_core(int fuzz_iterations);

/* A valid hand-built bundle: an identity model (input "x" [1,2,2] is the output; no ops) with
 * one unused constant "w" [4] in the weight segment, and metadata. Returns its size; the bytes
 * are written into buf (which must hold at least 4096 bytes). Offsets of interesting fields
 * are reported through `layout` when non-NULL. */
typedef struct eb_test_layout {
    size_t model_table, model_vtable;
    size_t tensors_vec, tensor0_table, tensor0_name, tensor0_shape, tensor1_table;
    size_t inputs_vec, outputs_vec, buffers_vec;
    size_t field_arena_size, field_ws_offset, field_ws_size, field_format_version;
    size_t tensor0_field_arena_offset, tensor1_field_buffer;
    size_t weight_segment;
} eb_test_layout;
size_t eb_test_build_identity(uint8_t *buf, eb_test_layout *layout);

/* Deterministic PRNG (xorshift64*). */
uint64_t eb_test_rand(uint64_t *state);
/* Applies 1..4 random mutations to buf (length *len) in place; most of them land in the first
 * `focus` bytes (the flatbuffer, not the weights) when 0 < focus < *len. */
void eb_test_mutate(uint8_t *buf, size_t *len, size_t focus, uint64_t *state);

#endif
