/* y = cast(x, dtype);  dx = cast(dy, x.dtype)
 * attr {dtype}. Always a new tensor in the graph, even when the dtype does
 * not change (a copy, with its own node). f64 -> f32 rounds to nearest. */
#include "internal.h"

typedef struct {
    nb_dtype dtype;
} cast_attr;

static int cast_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    nb_dtype d = ((const cast_attr *)attr)->dtype;
    char b[96];
    if (!nb__dtype_ok(d))
        return nb__error("nb_cast: unknown dtype %d (use NB_F32 or NB_F64) for x %s %s",
                         (int)d, nb_dtype_name(x[0]->dtype), nb__shape_str(x[0], b));
    nb_shape_same(out, x, n, attr);
    out->dtype = d;
    return 0;
}

static void cast_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)n, (void)attr;
    const nb_tensor *s = x[0];
    int64_t N = y->numel;
    if (y->dtype == s->dtype) {
        if (N)
            memcpy(y->data, s->data, (size_t)N * nb__dtype_size(y->dtype));
    } else if (y->dtype == NB_F64) {
        const float *X = s->data;
        double *Y = y->data;
        for (int64_t i = 0; i < N; i++)
            Y[i] = (double)X[i];
    } else {
        const double *X = s->data;
        float *Y = y->data;
        for (int64_t i = 0; i < N; i++)
            Y[i] = (float)X[i];
    }
}

static void cast_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                          int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_cast(dy, x[0]->dtype);
}

/* Gradcheck runs in f64 and perturbs by 1e-6, below f32 resolution, so the
 * table keeps to casts that do not round (to f64); f64 -> f32 -> f64 is
 * tested by hand. */
static const cast_attr to_f64 = {NB_F64};
static const nb_op_example examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .attr = &to_f64},
    {.n = 1, .ndim = {0}, .attr = &to_f64},
    {.n = 0},
};

const nb_op nb_op_cast = {.name = "cast", .arity = 1, .attr_size = sizeof(cast_attr),
                          .shape = cast_shape, .forward = cast_forward,
                          .backward = cast_backward, .saves = NB_SAVES_NONE,
                          .examples = examples};

nb_tensor *nb_cast(nb_tensor *x, nb_dtype dtype)
{
    return nb_apply(&nb_op_cast, &x, 1, &(cast_attr){dtype});
}
