/* y = cast(x, dtype);  dx = cast(dy, x.dtype)
 * attr {dtype}. Always a new tensor in the graph, even when the dtype does
 * not change (a copy, with its own node). f64 -> f32 rounds to nearest.
 * The one op that takes a u8 input (nb_apply refuses it elsewhere): u8 ->
 * f32 or f64 is exact. Nothing casts to u8, and a u8 input never requires
 * grad, so the backward only ever casts between f32 and f64. */
#include "internal.h"

typedef struct {
    nb_dtype dtype;
} cast_attr;

static int cast_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    nb_dtype d = ((const cast_attr *)attr)->dtype;
    char b[NB_SHAPE_STR_LEN];
    if (d == NB_U8)
        return nb__dtype_error("nb_cast: cannot cast to u8 (x %s %s): ops compute in f32 and "
                               "f64; u8 tensors are made by nb_zeros, nb_from_array, ...",
                               nb_dtype_name(x[0]->dtype), nb_shape_str(x[0], b));
    if (!nb__dtype_float(d))
        return nb__dtype_error("nb_cast: unknown dtype %d (use NB_F32 or NB_F64) for x %s %s",
                         (int)d, nb_dtype_name(x[0]->dtype), nb_shape_str(x[0], b));
    nb_shape_same(out, x, n, attr);
    out->dtype = d;
    return 0;
}

/* By the output's dtype; the input may be f32, f64 or u8 (the one
 * conversion). */
static void cast_kernel(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)n, (void)attr;
    nb__copy(y, &x[0]);
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
                          .shape = cast_shape,
                          .forward = {[NB_F32] = cast_kernel, [NB_F64] = cast_kernel},
                          .backward = cast_backward, .saves = NB_SAVES_NONE, .batch = nb_batch_rows,
                          .examples = examples};

nb_tensor *nb_cast(nb_tensor *x, nb_dtype dtype)
{
    return nb_apply(&nb_op_cast, &x, 1, &(cast_attr){dtype});
}
