/* Thread-local error state. A new failure replaces the message; an op that
 * only sees a NULL input keeps it, so the first error of an expression wins. */
#include "internal.h"

#include <stdio.h>

static _Thread_local char err_msg[512];
static _Thread_local bool err_set;

const char *nb_last_error(void) { return err_set ? err_msg : NULL; }

void nb_clear_error(void)
{
    err_set = false;
    err_msg[0] = '\0';
}

bool nb__has_error(void) { return err_set; }

int nb__error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    err_set = true;
    return -1;
}

const char *nb__op_prefix(const nb_op *op) { return nb__is_builtin(op) ? "nb_" : ""; }

int nb_op_error(const nb_op *op, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nb__error("%s%s: %s", nb__op_prefix(op), op && op->name ? op->name : "?", msg);
}

const char *nb__dims_str(int ndim, const int64_t *shape, char *buf)
{
    /* 8 dims of up to 10 digits each fit in 96 bytes. */
    int k = 0;
    buf[k++] = '(';
    for (int i = 0; i < ndim && k < 80; i++)
        k += snprintf(buf + k, 96 - (size_t)k, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (ndim == 1 && k < 94)
        buf[k++] = ',';
    buf[k++] = ')';
    buf[k] = '\0';
    return buf;
}

const char *nb__shape_str(const nb_tensor *t, char *buf)
{
    return nb__dims_str(t->ndim, t->shape, buf);
}
