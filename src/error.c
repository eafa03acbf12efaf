/* Thread-local state, and errors. A new failure replaces the message; an op
 * that only sees a NULL input keeps it, so the first error of an expression
 * wins. */
#include "internal.h"

#include <stdio.h>

static _Thread_local nb_thread state;

nb_thread *nb__thread(void) { return &state; }

const char *nb_last_error(void) { return state.err_set ? state.err_msg : NULL; }

nb_error_code nb_last_error_code(void) { return state.err_set ? state.err_code : NB_OK; }

const char *nb_error_code_name(nb_error_code code)
{
    static const char *const names[] = {"ok",     "invalid", "shape",   "dtype", "memory",
                                        "io",     "format",  "numeric", "state", "dist"};
    return (unsigned)code < sizeof names / sizeof names[0] ? names[code] : "?";
}

void nb_clear_error(void)
{
    state.err_set = false;
    state.err_code = NB_OK;
    state.err_msg[0] = '\0';
}

bool nb__has_error(void) { return state.err_set; }


const char *nb__op_prefix(const nb_op *op) { return nb__is_builtin(op) ? "nb_" : ""; }

const char *nb_error_scope_begin(const char *fn)
{
    const char *outer = state.entry_fn;
    if (!outer)
        state.entry_fn = fn;
    return outer;
}

void nb_error_scope_end(const char *outer) { state.entry_fn = outer; }

/* The function the running call is reported under, or NULL. */
const char *nb__entry(char *buf)
{
    (void)buf;
    return state.entry_fn;
}

void nb__name_error(const char *fn)
{
    char *m = state.err_msg;
    size_t k = strlen(fn);
    if (!state.err_set || (strncmp(m, fn, k) == 0 && m[k] == ':'))
        return;
    char copy[sizeof state.err_msg];
    snprintf(copy, sizeof copy, "%s", strncmp(m, "nabla: ", 7) == 0 ? m + 7 : m);
    /* The end of a long message is cut off. */
    snprintf(m, sizeof state.err_msg, "%.64s: %.*s", fn, (int)(sizeof state.err_msg - 68), copy);
}

static int set_error(nb_error_code code, const char *fmt, va_list ap)
{
    char *m = state.err_msg;
    const size_t cap = sizeof state.err_msg;
    if (fmt)
        vsnprintf(m, cap, fmt, ap);
    else
        snprintf(m, cap, "nb_set_error: the message (format) is NULL");
    char buf[64];
    const char *fn = nb__entry(buf);
    size_t k = fn ? strlen(fn) : 0;
    if (k && k + 2 < cap && !(strncmp(m, fn, k) == 0 && m[k] == ':')) {
        /* "fn: " in front, the end of a long message cut off. */
        size_t len = strlen(m);
        if (len + k + 2 >= cap)
            len = cap - k - 3;
        memmove(m + k + 2, m, len);
        m[k + 2 + len] = '\0';
        memcpy(m, fn, k);
        m[k] = ':';
        m[k + 1] = ' ';
    }
    state.err_set = true;
    state.err_code = code;
    state.errors++;
    return -1;
}

int nb_set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error(NB_ERR_INVALID, fmt, ap);
    va_end(ap);
    return -1;
}

int nb_set_error_code(nb_error_code code, const char *fmt, ...)
{
    if ((unsigned)code > NB_ERR_DIST || code == NB_OK)
        code = NB_ERR_INVALID;
    va_list ap;
    va_start(ap, fmt);
    set_error(code, fmt, ap);
    va_end(ap);
    return -1;
}

static int op_error(nb_error_code code, const nb_op *op, const char *fmt, va_list ap)
{
    char msg[400];
    if (fmt)
        vsnprintf(msg, sizeof msg, fmt, ap);
    else
        snprintf(msg, sizeof msg, "nb_op_error: the message (format) is NULL");
    return nb__error_code(code, "%s%s: %s", nb__op_prefix(op), op && op->name ? op->name : "?",
                          msg);
}

int nb_op_error(const nb_op *op, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    op_error(NB_ERR_INVALID, op, fmt, ap);
    va_end(ap);
    return -1;
}

int nb__op_error_code(nb_error_code code, const nb_op *op, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    op_error(code, op, fmt, ap);
    va_end(ap);
    return -1;
}

const char *nb_dims_str(int ndim, const int64_t *shape, char *buf)
{
    if (!buf)
        return "(null buf)";
    if (ndim < 0 || ndim > NB_MAX_DIMS || (ndim > 0 && !shape)) {
        snprintf(buf, NB_SHAPE_STR_LEN, ndim > 0 && ndim <= NB_MAX_DIMS ? "(null)" : "(%d dims?)",
                 ndim);
        return buf;
    }
    /* 8 dims of up to 10 digits each fit; longer ones are cut short with
     * "..." rather than overflow NB_SHAPE_STR_LEN. */
    const size_t cap = NB_SHAPE_STR_LEN - 5;
    size_t k = 0;
    buf[k++] = '(';
    for (int i = 0; i < ndim; i++) {
        int w = snprintf(buf + k, cap - k, i ? ",%lld" : "%lld", (long long)shape[i]);
        if (w < 0 || (size_t)w >= cap - k) {
            k = cap - 1;
            memcpy(buf + k, "...", 3);
            k += 3;
            break;
        }
        k += (size_t)w;
    }
    if (ndim == 1)
        buf[k++] = ',';
    buf[k++] = ')';
    buf[k] = '\0';
    return buf;
}

const char *nb_shape_str(const nb_tensor *t, char *buf)
{
    if (!buf)
        return "(null buf)";
    if (!t)
        return strcpy(buf, "(null)");
    return nb_dims_str(t->ndim, t->shape, buf);
}
