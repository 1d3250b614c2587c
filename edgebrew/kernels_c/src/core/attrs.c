/* Attribute accessors over a node's verified attribute list, and eb_node_fail. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bundle_reader.h"
#include "core.h"

static const char *kind_name(int kind) {
    switch (kind) {
    case EB_ATTR_INT: return "an int";
    case EB_ATTR_FLOAT: return "a float";
    case EB_ATTR_INTS: return "a list of ints";
    case EB_ATTR_FLOATS: return "a list of floats";
    case EB_ATTR_STRING: return "a string";
    }
    return "of an unknown kind";
}

eb_status eb_node_fail(const eb_node *node, eb_error *err, eb_status status, const char *fmt,
                       ...) {
    if (err == NULL) return status;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt ? fmt : "", ap);
    va_end(ap);
    if (node)
        snprintf(err->msg, sizeof err->msg, "op '%s' (%s): %s", node->name ? node->name : "?",
                 eb_op_type_name(node->type), msg);
    else
        snprintf(err->msg, sizeof err->msg, "%s", msg);
    return status;
}

static const eb_attr_entry *find(const eb_node *node, const char *key) {
    if (node == NULL || node->attrs == NULL || key == NULL) return NULL;
    const eb_attrs *a = node->attrs;
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->items[i].key, key) == 0) return &a->items[i];
    return NULL;
}

int eb_attr_has(const eb_node *node, const char *key) { return find(node, key) != NULL; }

static eb_status wrong_kind(const eb_node *node, const char *key, const char *want,
                            const eb_attr_entry *e, eb_error *err) {
    return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE, "attribute '%s' must be %s, not %s",
                        key, want, kind_name(e->kind));
}

static eb_status bad_call(const eb_node *node, const char *key, eb_error *err) {
    return eb_node_fail(node, err, EB_ERR_INVALID_ARGUMENT, "attribute '%s': bad accessor call",
                        key ? key : "(null)");
}

eb_status eb_attr_int(const eb_node *node, const char *key, int64_t dflt, int64_t *out,
                      eb_error *err) {
    if (!node || !key || !out) return bad_call(node, key, err);
    const eb_attr_entry *e = find(node, key);
    if (!e) {
        *out = dflt;
        return EB_OK;
    }
    if (e->kind != EB_ATTR_INT) return wrong_kind(node, key, "an int", e, err);
    *out = e->i;
    return EB_OK;
}

eb_status eb_attr_float(const eb_node *node, const char *key, double dflt, double *out,
                        eb_error *err) {
    if (!node || !key || !out) return bad_call(node, key, err);
    const eb_attr_entry *e = find(node, key);
    if (!e) {
        *out = dflt;
        return EB_OK;
    }
    if (e->kind == EB_ATTR_FLOAT)
        *out = e->f;
    else if (e->kind == EB_ATTR_INT)
        *out = (double)e->i;
    else
        return wrong_kind(node, key, "a float", e, err);
    return EB_OK;
}

eb_status eb_attr_ints(const eb_node *node, const char *key, int64_t *out, int max, int *n,
                       eb_error *err) {
    if (!node || !key || !n || (max > 0 && !out)) return bad_call(node, key, err);
    *n = 0;
    const eb_attr_entry *e = find(node, key);
    if (!e) return EB_OK;
    if (e->kind != EB_ATTR_INTS) return wrong_kind(node, key, "a list of ints", e, err);
    if (max < 0 || e->n_ints > (uint32_t)max)
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE,
                            "attribute '%s' has %u values, at most %d allowed", key,
                            (unsigned)e->n_ints, max < 0 ? 0 : max);
    for (uint32_t i = 0; i < e->n_ints; i++) out[i] = eb_fb_le_i64(e->ints + (size_t)i * 8);
    *n = (int)e->n_ints;
    return EB_OK;
}

eb_status eb_attr_floats(const eb_node *node, const char *key, double *out, int max, int *n,
                         eb_error *err) {
    if (!node || !key || !n || (max > 0 && !out)) return bad_call(node, key, err);
    *n = 0;
    const eb_attr_entry *e = find(node, key);
    if (!e) return EB_OK;
    uint32_t count;
    if (e->kind == EB_ATTR_FLOATS)
        count = e->n_floats;
    else if (e->kind == EB_ATTR_INTS)
        count = e->n_ints;
    else
        return wrong_kind(node, key, "a list of floats", e, err);
    if (max < 0 || count > (uint32_t)max)
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE,
                            "attribute '%s' has %u values, at most %d allowed", key,
                            (unsigned)count, max < 0 ? 0 : max);
    for (uint32_t i = 0; i < count; i++)
        out[i] = e->kind == EB_ATTR_FLOATS ? eb_fb_le_f64(e->floats + (size_t)i * 8)
                                           : (double)eb_fb_le_i64(e->ints + (size_t)i * 8);
    *n = (int)count;
    return EB_OK;
}

eb_status eb_attr_string(const eb_node *node, const char *key, const char *dflt,
                         const char **out, eb_error *err) {
    if (!node || !key || !out) return bad_call(node, key, err);
    const eb_attr_entry *e = find(node, key);
    if (!e) {
        *out = dflt;
        return EB_OK;
    }
    if (e->kind != EB_ATTR_STRING) return wrong_kind(node, key, "a string", e, err);
    *out = e->s ? e->s : "";
    return EB_OK;
}
