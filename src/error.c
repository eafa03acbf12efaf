/* Thread-local state, and errors. A new failure replaces the message; an op
 * that only sees a NULL input keeps it, so the first error of an expression
 * wins. */
#include "internal.h"

#include <stdio.h>

static _Thread_local nb_thread state;

nb_thread *nb__thread(void) { return &state; }

const char *nb_last_error(void) { return state.err_set ? state.err_msg : NULL; }

void nb_clear_error(void)
{
    state.err_set = false;
    state.err_msg[0] = '\0';
}

bool nb__has_error(void) { return state.err_set; }

/* Does msg start with a function's name, "nb_matmul: ..." or "my_op: ..."? */
static bool names_a_function(const char *msg)
{
    const char *p = msg;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '_')
        p++;
    return p > msg && p[0] == ':' && p[1] == ' ';
}

int nb__blame(const char *fn)
{
    if (!state.err_set)
        return nb__error("%s: failed", fn);
    if (names_a_function(state.err_msg))
        return -1;
    char why[sizeof state.err_msg];
    memcpy(why, state.err_msg, sizeof why);
    return nb__error("%s: %s", fn, why);
}

const char *nb__op_prefix(const nb_op *op) { return nb__is_builtin(op) ? "nb_" : ""; }

int nb_set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(state.err_msg, sizeof state.err_msg, fmt, ap);
    va_end(ap);
    state.err_set = true;
    state.errors++;
    return -1;
}

int nb_op_error(const nb_op *op, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nb__error("%s%s: %s", nb__op_prefix(op), op && op->name ? op->name : "?", msg);
}

const char *nb_dims_str(int ndim, const int64_t *shape, char *buf)
{
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
    if (!t)
        return strcpy(buf, "(null)");
    return nb_dims_str(t->ndim, t->shape, buf);
}
