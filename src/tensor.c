/* Heap factories, inspection, element access, printing, comparison. */
#include "internal.h"

#include <math.h>

/* t usable, else return ret with the error: NULL (keeping a pending
 * error), or a tensor of a reset or freed graph, or freed (nb_free). */
#define NEED(t, fn, ret)                                                       \
    do {                                                                       \
        if (nb__usable(fn, "tensor", (t)))                                     \
            return ret;                                                        \
    } while (0)

int nb_check_tensor(const char *fn, const char *what, const nb_tensor *t)
{
    fn = fn ? fn : "nb_check_tensor";
    what = what ? what : "tensor";
    if (!t) {
        if (!nb__has_error())
            nb__error("%s: %s is NULL", fn, what);
        return -1;
    }
    return nb__live(t) ? 0 : nb__stale_error(fn, what, t);
}

int nb__u8_error(const char *fn, const char *what)
{
    return nb__dtype_error("%s: %s is u8, which ops do not compute in; convert with "
                           "nb_cast(x, NB_F32)", fn, what);
}

/* The error for a value a u8 tensor cannot hold; -1. */
static int u8_value_error(const char *fn, double v)
{
    return nb__error("%s: u8 tensors hold whole numbers in [0, 255], got %g", fn, v);
}

/* A heap tensor filled with value. */
static nb_tensor *filled(const char *fn, nb_dtype dtype, int ndim, const int64_t *shape,
                         double value)
{
    if (dtype == NB_U8 && !nb__u8_value(value)) {
        u8_value_error(fn, value);
        return NULL;
    }
    nb_tensor *t = nb__new_heap_tensor(fn, dtype, ndim, shape);
    if (!t)
        return NULL;
    if (dtype == NB_U8)
        memset(t->own.data, (int)value, (size_t)t->numel);
    else if (dtype == NB_F64)
        for (int64_t i = 0; i < t->numel; i++)
            ((double *)t->own.data)[i] = value;
    else
        for (int64_t i = 0; i < t->numel; i++)
            ((float *)t->own.data)[i] = (float)value;
    return t;
}

nb_tensor *nb_full(nb_dtype dtype, int ndim, const int64_t *shape, double value)
{
    return filled("nb_full", dtype, ndim, shape, value);
}

nb_tensor *nb_empty(nb_dtype dtype, int ndim, const int64_t *shape)
{
    return nb__new_heap_tensor("nb_empty", dtype, ndim, shape);
}

nb_tensor *nb_zeros(nb_dtype dtype, int ndim, const int64_t *shape)
{
    return filled("nb_zeros", dtype, ndim, shape, 0.0);
}

nb_tensor *nb_ones(nb_dtype dtype, int ndim, const int64_t *shape)
{
    return filled("nb_ones", dtype, ndim, shape, 1.0);
}

nb_tensor *nb_scalar(nb_dtype dtype, double value)
{
    return filled("nb_scalar", dtype, 0, NULL, value);
}

nb_tensor *nb_from_array(nb_dtype dtype, int ndim, const int64_t *shape, const void *data)
{
    if (!data) {
        nb__error("nb_from_array: data is NULL");
        return NULL;
    }
    nb_tensor *t = nb__new_heap_tensor("nb_from_array", dtype, ndim, shape);
    if (t)
        memcpy(t->own.data, data, t->own.bytes);
    return t;
}

nb_tensor *nb_arange(nb_dtype dtype, double start, double stop, double step)
{
    if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step)) {
        nb__error("nb_arange: need finite start, stop and a non-zero step, got %g, %g, %g",
                  start, stop, step);
        return NULL;
    }
    double n = ceil((stop - start) / step);
    if (!(n <= (double)NB_MAX_NUMEL)) {
        nb__shape_error("nb_arange: [%g, %g) in steps of %g has more than 2^48 elements "
                  "(NB_MAX_NUMEL)", start, stop, step);
        return NULL;
    }
    int64_t len = n > 0 ? (int64_t)n : 0;
    /* u8: whole start and step make every value whole; the first and the
     * last bound the rest. */
    if (dtype == NB_U8 && len > 0 && (step != floor(step) || !nb__u8_value(start) ||
                                      !nb__u8_value(start + (double)(len - 1) * step))) {
        nb__error("nb_arange: u8 tensors hold whole numbers in [0, 255]; [%g, %g) in steps "
                  "of %g does not fit", start, stop, step);
        return NULL;
    }
    nb_tensor *t = nb__new_heap_tensor("nb_arange", dtype, 1, &len);
    if (t)
        for (int64_t i = 0; i < len; i++)
            nb__put(t, i, start + (double)i * step);
    return t;
}

/* A heap tensor filled in row-major order by draw(rng). */
static nb_tensor *random_tensor(const char *fn, nb_dtype dtype, int ndim, const int64_t *shape,
                                nb_rng *rng, double (*draw)(nb_rng *))
{
    if (!rng) {
        nb__error("%s: rng is NULL", fn);
        return NULL;
    }
    if (dtype == NB_U8) {
        nb__dtype_error("%s: draws f32 or f64, not u8", fn);
        return NULL;
    }
    nb_tensor *t = nb__new_heap_tensor(fn, dtype, ndim, shape);
    if (t && dtype == NB_F64)
        for (int64_t i = 0; i < t->numel; i++)
            ((double *)t->own.data)[i] = draw(rng);
    else if (t)
        for (int64_t i = 0; i < t->numel; i++)
            ((float *)t->own.data)[i] = (float)draw(rng);
    return t;
}

nb_tensor *nb_rand(nb_dtype dtype, int ndim, const int64_t *shape, nb_rng *rng)
{
    return random_tensor("nb_rand", dtype, ndim, shape, rng, nb_rng_uniform);
}

nb_tensor *nb_randn(nb_dtype dtype, int ndim, const int64_t *shape, nb_rng *rng)
{
    return random_tensor("nb_randn", dtype, ndim, shape, rng, nb_rng_normal);
}

nb_tensor *nb_clone(const nb_tensor *src)
{
    NEED(src, "nb_clone", NULL);
    nb_tensor *t = nb__new_heap_tensor("nb_clone", src->dtype, src->ndim, src->shape);
    if (t) {
        nb_view d, s;
        nb__view(t, &d);
        nb__view(src, &s);
        nb__copy(&d, &s);
        if (src->name && !nb_set_name(t, src->name)) {
            nb_free(t);
            nb__memory_error("nb_clone: out of memory for the name '%s'", src->name);
            return NULL;
        }
    }
    return t;
}

/* ---- gradients on leaves ---- */

nb_tensor *nb_set_requires_grad(nb_tensor *t, bool on)
{
    NEED(t, "nb_set_requires_grad", NULL);
    if (t->node) {
        nb__error("nb_set_requires_grad: '%s' is the result of an op, not a leaf "
                  "(use nb_detach to make a leaf)", t->node->op->name);
        return NULL;
    }
    if (on && t->dtype == NB_U8) {
        nb__dtype_error("nb_set_requires_grad: the tensor is u8, which never requires grad "
                        "(gradients are f32 or f64: nb_cast it)");
        return NULL;
    }
    t->requires_grad = on;
    return t;
}

nb_tensor *nb_param(nb_tensor *t)
{
    NEED(t, "nb_param", NULL);
    if (t->node) {
        nb__error("nb_param: '%s' is the result of an op, not a leaf (parameters are heap "
                  "tensors: nb_clone it)", t->node->op->name);
        return NULL;
    }
    if (t->dtype == NB_U8) {
        nb__dtype_error("nb_param: the tensor is u8; parameters are f32 or f64");
        return NULL;
    }
    if (!nb_set_requires_grad(t, true))
        return NULL;
    t->param = true;
    return t;
}

bool nb_requires_grad(const nb_tensor *t)
{
    NEED(t, "nb_requires_grad", false);
    return t->requires_grad;
}
bool nb_is_param(const nb_tensor *t)
{
    NEED(t, "nb_is_param", false);
    return t->param;
}
nb_tensor *nb_grad_of(const nb_tensor *t)
{
    NEED(t, "nb_grad_of", NULL);
    return t->grad;
}

/* Lines [r0, r1) of 64 bytes of a gradient zeroed (every step: a wide
 * model's are megabytes, zeroed on threads when large). */
static void zero_lines(void *job, int t, int64_t r0, int64_t r1)
{
    (void)t;
    const nb_tensor *g = job;
    size_t bytes = (size_t)g->numel * nb__dtype_size(g->dtype);
    size_t b0 = (size_t)r0 * 64, b1 = (size_t)r1 * 64 < bytes ? (size_t)r1 * 64 : bytes;
    memset((char *)nb__ptr(g) + b0, 0, b1 - b0);
}

void nb_zero_grad(nb_tensor *t)
{
    if (t && !nb__live(t)) {
        nb__stale_error("nb_zero_grad", "tensor", t);
        return;
    }
    if (t && t->grad) {
        int64_t lines = (t->grad->numel * (int64_t)nb__dtype_size(t->grad->dtype) + 63) / 64;
        nb__parallel_rows(nb__kernel_threads(t->grad->numel, lines), lines, zero_lines, t->grad);
        nb__bump(t->grad);
        t->grad_zero = true;
        t->grad_zero_version = t->grad->storage->version;
    }
}

/* ---- inspection ---- */

nb_dtype nb_dtype_of(const nb_tensor *t)
{
    NEED(t, "nb_dtype_of", (nb_dtype)0);
    return t->dtype;
}

const char *nb_dtype_name(nb_dtype d)
{
    return d == NB_F32 ? "f32" : d == NB_F64 ? "f64" : d == NB_U8 ? "u8" : "?";
}

size_t nb_dtype_size(nb_dtype d) { return nb__dtype_ok(d) ? nb__dtype_size(d) : 0; }

int nb_ndim(const nb_tensor *t)
{
    NEED(t, "nb_ndim", -1);
    return t->ndim;
}

int64_t nb_dim(const nb_tensor *t, int i)
{
    NEED(t, "nb_dim", -1);
    int a = nb__axis(i, t->ndim);
    if (a < 0) {
        char b[NB_SHAPE_STR_LEN];
        nb__error("nb_dim: dimension %d is out of range for shape %s", i, nb_shape_str(t, b));
        return -1;
    }
    return t->shape[a];
}

/* The accessors: NULL or a stale tensor give the failure value and an error. */
const int64_t *nb_shape(const nb_tensor *t)
{
    NEED(t, "nb_shape", NULL);
    return t->shape;
}
const int64_t *nb_strides(const nb_tensor *t)
{
    NEED(t, "nb_strides", NULL);
    return t->strides;
}
int64_t nb_offset(const nb_tensor *t)
{
    NEED(t, "nb_offset", -1);
    return t->offset;
}
int64_t nb_numel(const nb_tensor *t)
{
    NEED(t, "nb_numel", -1);
    return t->numel;
}
bool nb_is_contiguous(const nb_tensor *t)
{
    NEED(t, "nb_is_contiguous", false);
    return t->contiguous;
}
bool nb_is_heap(const nb_tensor *t)
{
    NEED(t, "nb_is_heap", false);
    return t->lifetime == NB_HEAP;
}
void *nb_data(const nb_tensor *t)
{
    NEED(t, "nb_data", NULL);
    return nb__ptr(t);
}

void nb_bump_version(nb_tensor *t)
{
    if (t && !nb__live(t))
        nb__stale_error("nb_bump_version", "tensor", t);
    else if (t)
        nb__bump(t);
}
const char *nb_name(const nb_tensor *t)
{
    NEED(t, "nb_name", NULL);
    return t->name;
}

nb_tensor *nb_set_name(nb_tensor *t, const char *name)
{
    NEED(t, "nb_set_name", NULL);
    char *copy = NULL;
    if (name) {
        size_t n = strlen(name) + 1;
        if (t->lifetime == NB_HEAP) {
            copy = nb__alloc(n);
            if (copy)
                memcpy(copy, name, n);
            else
                nb__memory_error("nb_set_name: out of memory for a name of %zu bytes", n);
        } else {
            nb_graph *g = nb__graph();
            copy = g ? nb__arena_strdup(g, name) : NULL;
            if (!g)
                nb__state_error("nb_set_name: no current graph for a graph tensor");
            else if (!copy)
                nb__memory_error("nb_set_name: out of memory for a name of %zu bytes", n);
        }
        if (!copy)
            return NULL;
    }
    if (t->lifetime == NB_HEAP)
        nb__free(t->name);
    t->name = copy;
    return t;
}

static int64_t flat_index(const nb_tensor *t, int ndim, const int64_t *index, const char *fn)
{
    char b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN];
    if (ndim != t->ndim || (ndim > 0 && !index)) {
        nb__error("%s: index has %d dimensions, tensor %s has %d", fn, ndim,
                  nb_shape_str(t, b), t->ndim);
        return -1;
    }
    int64_t flat = 0;
    for (int i = 0; i < ndim; i++) {
        int64_t k = index[i] < 0 ? index[i] + t->shape[i] : index[i];
        if (k < 0 || k >= t->shape[i]) {
            nb__error("%s: index %s is out of range for shape %s", fn,
                      nb_dims_str(ndim, index, c), nb_shape_str(t, b));
            return -1;
        }
        flat = flat * t->shape[i] + k;
    }
    return flat;
}

double nb_get(const nb_tensor *t, int ndim, const int64_t *index)
{
    NEED(t, "nb_get", NAN);
    int64_t i = flat_index(t, ndim, index, "nb_get");
    return i < 0 ? NAN : nb__get(t, i);
}

int nb_set(nb_tensor *t, int ndim, const int64_t *index, double value)
{
    NEED(t, "nb_set", -1);
    if (t->requires_grad && nb_is_grad_enabled())
        return nb__state_error("nb_set: in-place write to a tensor that requires grad while "
                         "recording (wrap it in nb_set_grad_enabled(false))");
    if (nb__layout_overlaps(t->ndim, t->shape, t->strides)) {
        char b[NB_SHAPE_STR_LEN];
        return nb__error("nb_set: tensor %s is a broadcast view whose elements share memory; "
                         "write to the tensor it views (or an nb_clone)", nb_shape_str(t, b));
    }
    int64_t i = flat_index(t, ndim, index, "nb_set");
    if (i < 0)
        return -1;
    if (t->dtype == NB_U8 && !nb__u8_value(value))
        return u8_value_error("nb_set", value);
    nb__put(t, i, value);
    nb__bump(t);
    return 0;
}

double nb_get_flat(const nb_tensor *t, int64_t i)
{
    NEED(t, "nb_get_flat", NAN);
    if (i < 0 || i >= t->numel) {
        char b[NB_SHAPE_STR_LEN];
        nb__error("nb_get_flat: index %lld is out of range for %s (%lld elements)",
                  (long long)i, nb_shape_str(t, b), (long long)t->numel);
        return NAN;
    }
    return nb__get(t, i);
}

double nb_item(const nb_tensor *t)
{
    NEED(t, "nb_item", NAN);
    if (t->numel != 1) {
        char b[NB_SHAPE_STR_LEN];
        nb__shape_error("nb_item: tensor %s has %lld elements, not 1", nb_shape_str(t, b),
                  (long long)t->numel);
        return NAN;
    }
    return nb__get(t, 0);
}

int nb_to_doubles(const nb_tensor *t, double *out)
{
    NEED(t, "nb_to_doubles", -1);
    if (!out)
        return nb__error("nb_to_doubles: out is NULL");
    for (int64_t i = 0; i < t->numel; i++)
        out[i] = nb__get(t, i);
    return 0;
}

bool nb_allclose(const nb_tensor *a, const nb_tensor *b, double rtol, double atol)
{
    if (nb__usable("nb_allclose", "a", a) || nb__usable("nb_allclose", "b", b))
        return false;
    if (!nb__same_shape(a, b))
        return false;
    for (int64_t i = 0; i < a->numel; i++) {
        double x = nb__get(a, i), y = nb__get(b, i);
        if (x == y)
            continue; /* equal infinities */
        if (!(fabs(x - y) <= atol + rtol * fabs(y)))
            return false;
    }
    return true;
}

/* ---- printing ---- */

enum { EDGE = 3, SUMMARIZE_ABOVE = 1000 };

typedef struct {
    FILE *f;
    const nb_tensor *t;
    bool elide;
    bool sci;
    int width, prec;
} printer;

static int format_value(const printer *p, double v, char *buf, size_t n)
{
    if (p->t->dtype == NB_U8)
        return snprintf(buf, n, "%.0f", v); /* "255", as PyTorch prints uint8 */
    if (p->sci)
        return snprintf(buf, n, "%.*e", p->prec, v);
    if (p->prec == 0 && isfinite(v))
        return snprintf(buf, n, "%.0f.", v); /* whole numbers print as "2." */
    return snprintf(buf, n, "%.*f", p->prec, v);
}

static void print_value(printer *p, double v)
{
    char buf[64];
    format_value(p, v, buf, sizeof buf);
    fprintf(p->f, "%*s", p->width, buf);
}

static void print_rec(printer *p, int dim, int64_t offset, int indent)
{
    const nb_tensor *t = p->t;
    int64_t n = t->shape[dim], stride = 1;
    for (int i = dim + 1; i < t->ndim; i++)
        stride *= t->shape[i];
    fputc('[', p->f);
    for (int64_t i = 0; i < n; i++) {
        if (p->elide && n > 2 * EDGE && i == EDGE) {
            if (dim == t->ndim - 1)
                fputs("..., ", p->f);
            else
                fprintf(p->f, "...,\n%*s", indent + 1, "");
            i = n - EDGE - 1;
            continue;
        }
        if (dim == t->ndim - 1)
            print_value(p, nb__get(t, offset + i));
        else
            print_rec(p, dim + 1, offset + i * stride, indent + 1);
        if (i < n - 1) {
            if (dim == t->ndim - 1)
                fputs(", ", p->f);
            else {
                fputc(',', p->f);
                for (int k = dim; k < t->ndim - 1; k++)
                    fputc('\n', p->f);
                fprintf(p->f, "%*s", indent + 1, "");
            }
        }
    }
    fputc(']', p->f);
}

int nb_print(const nb_tensor *t, FILE *f)
{
    NEED(t, "nb_print", -1);
    if (!f)
        return nb__error("nb_print: FILE is NULL");
    printer p = {f, t, t->numel > SUMMARIZE_ABOVE, false, 0, 4};
    /* One format for all values, chosen from their range, as PyTorch does. */
    double amax = 0, amin = INFINITY;
    bool all_int = true;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = fabs(nb__get(t, i));
        if (!isfinite(v))
            continue;
        if (v > amax)
            amax = v;
        if (v < amin && v > 0)
            amin = v;
        if (v != floor(v))
            all_int = false;
    }
    if (amax >= 1e8 || (amin < 1e-4 && amin > 0) || (amax / amin > 1e4 && !all_int))
        p.sci = true;
    else
        p.prec = all_int ? 0 : 4;
    /* Right-align every value to the widest one. */
    char buf[64];
    for (int64_t i = 0; i < t->numel; i++) {
        int w = format_value(&p, nb__get(t, i), buf, sizeof buf);
        if (w > p.width)
            p.width = w;
    }
    fputs("tensor(", f);
    if (t->numel == 0)
        fputs("[]", f); /* as PyTorch: its rows may number 2^48 (the shape follows) */
    else if (t->ndim == 0)
        print_value(&p, nb__get(t, 0));
    else
        print_rec(&p, 0, 0, 7);
    char b[NB_SHAPE_STR_LEN];
    fprintf(f, ", shape=%s, dtype=%s", nb_shape_str(t, b), nb_dtype_name(t->dtype));
    if (t->name)
        fprintf(f, ", name='%s'", t->name);
    if (t->node)
        fprintf(f, ", op=%s", t->node->op->name);
    else if (t->requires_grad)
        fputs(", requires_grad", f);
    fputs(")\n", f);
    return ferror(f) ? nb__error_code(NB_ERR_IO, "nb_print: write failed") : 0;
}
