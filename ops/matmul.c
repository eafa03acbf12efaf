/* y = a @ b over the last two dimensions:
 *   (..., m, k) @ (..., k, n) -> (..., m, n), both operands at least 2-D, the
 *   batch dimensions (...) broadcast like NumPy.
 *   da = dy @ b^T      db = a^T @ dy      (summed back over broadcast batch dims)
 * where t^T is the transpose view of t's last two dimensions: it costs no
 * copy, and the kernel hands it to gemm (src/gemm.c: OpenBLAS or oneDNN, and
 * the thread count) as a transpose flag. An
 * operand whose last two dimensions are unit-stride in either order (rows or
 * columns packed, any leading dimension) goes to gemm as it is; any other
 * layout is packed into scratch first. A batch times one matrix is folded
 * into one tall gemm when the batch's rows are evenly spaced. */
#include "internal.h"

#include <limits.h>

extern const nb_op nb_op_matmul;

static int matmul_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n, (void)attr;
    const nb_tensor *a = x[0], *b = x[1];
    char p[NB_SHAPE_STR_LEN], q[NB_SHAPE_STR_LEN];
    if (a->ndim < 2 || b->ndim < 2)
        return nb__op_error_code(NB_ERR_SHAPE, &nb_op_matmul,
                           "both operands need at least 2 dimensions, got %s @ %s "
                           "(reshape a vector to (1,k) or (k,1))",
                           nb_shape_str(a, p), nb_shape_str(b, q));
    if (a->dtype != b->dtype)
        return nb__op_error_code(NB_ERR_DTYPE, &nb_op_matmul, "dtypes differ: %s %s @ %s %s",
                           nb_dtype_name(a->dtype), nb_shape_str(a, p),
                           nb_dtype_name(b->dtype), nb_shape_str(b, q));
    if (a->shape[a->ndim - 1] != b->shape[b->ndim - 2])
        return nb__op_error_code(NB_ERR_SHAPE, &nb_op_matmul, "inner dimensions differ: %s @ %s",
                           nb_shape_str(a, p), nb_shape_str(b, q));
    for (int i = 1; i <= 2; i++)
        if (a->shape[a->ndim - i] > INT_MAX || b->shape[b->ndim - i] > INT_MAX)
            return nb__op_error_code(NB_ERR_SHAPE, &nb_op_matmul, "matrix dimensions above %d are not supported: "
                               "%s @ %s", INT_MAX, nb_shape_str(a, p), nb_shape_str(b, q));
    int nd = nb__broadcast_shape(a->ndim - 2, a->shape, b->ndim - 2, b->shape, out->shape);
    if (nd < 0)
        return nb__op_error_code(NB_ERR_SHAPE, &nb_op_matmul, "batch dimensions do not broadcast: %s @ %s",
                           nb_shape_str(a, p), nb_shape_str(b, q));
    out->dtype = a->dtype;
    out->ndim = nd + 2;
    out->shape[nd] = a->shape[a->ndim - 2];
    out->shape[nd + 1] = b->shape[b->ndim - 1];
    return 0;
}

/* An operand as gemm takes it: data, transpose flag, leading dimension, and
 * its element strides along the output's nb batch dimensions (0 where it is
 * broadcast). */
typedef struct {
    const void *data;
    bool t;
    int64_t ld;
    int64_t batch[NB_MAX_DIMS];
} operand;

/* Whether gemm can read v's matrices where they are; sets t and ld. A
 * leading dimension beyond an int (a slice with a huge step) is packed. */
static bool gemm_layout(const nb_view *v, operand *o)
{
    int64_t r = v->shape[v->ndim - 2], c = v->shape[v->ndim - 1];
    int64_t sr = v->strides[v->ndim - 2], sc = v->strides[v->ndim - 1];
    int64_t rr = r > 1 ? r : 1, cc = c > 1 ? c : 1;
    if ((sc == 1 || c <= 1) && (r <= 1 || sr >= cc)) {
        o->t = false;
        o->ld = r <= 1 ? cc : sr;
        return o->ld <= INT_MAX;
    }
    if ((sr == 1 || r <= 1) && (c <= 1 || sc >= rr)) {
        o->t = true;
        o->ld = c <= 1 ? rr : sc;
        return o->ld <= INT_MAX;
    }
    return false;
}

/* The operand for v, packed into scratch (a contiguous copy in the graph's
 * arena) when gemm cannot read it in place; -1 if the scratch fails. */
static int make_operand(const nb_view *v, int nb, operand *o)
{
    nb_view packed;
    if (!gemm_layout(v, o)) {
        packed = *v;
        nb__strides(v->ndim, v->shape, packed.strides);
        packed.data = nb_kernel_scratch((size_t)v->numel * nb__dtype_size(v->dtype));
        if (!packed.data)
            return -1;
        nb__copy(&packed, v);
        v = &packed;
        gemm_layout(v, o);
    }
    o->data = v->data;
    for (int i = nb - 1; i >= 0; i--) {
        int j = i - (nb - (v->ndim - 2));
        o->batch[i] = j < 0 || v->shape[j] == 1 ? 0 : v->strides[j];
    }
    return 0;
}

/* True when a's matrices over the batch are one tall matrix: no batch dim
 * broadcast, each spaced by the rows before it. */
static bool foldable(const operand *a, const nb_view *y, int nb, int64_t M)
{
    if (a->t)
        return false;
    int64_t expect = M * a->ld;
    for (int i = nb - 1; i >= 0; i--) {
        if (y->shape[i] == 1)
            continue;
        if (a->batch[i] != expect)
            return false;
        expect *= y->shape[i];
    }
    return true;
}

#define GEMM(T, FN)                                                            \
    static void matmul_##T(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n, (void)attr;                                                   \
        int nb = y->ndim - 2;                                                  \
        int64_t M = y->shape[nb], N = y->shape[nb + 1];                        \
        int64_t K = x[0].shape[x[0].ndim - 1];                                 \
        int64_t batch = nb__numel(nb, y->shape);                               \
        T *Y = y->data;                                                        \
        if (y->numel == 0)                                                     \
            return;                                                            \
        if (K == 0) {                                                          \
            memset(Y, 0, (size_t)y->numel * sizeof(T));                        \
            return;                                                            \
        }                                                                      \
        operand a, b;                                                          \
        if (make_operand(&x[0], nb, &a) || make_operand(&x[1], nb, &b))        \
            return; /* out of scratch: the error is set, nb_apply fails */    \
        bool b_single = true;                                                  \
        for (int i = 0; i < nb; i++)                                           \
            b_single &= b.batch[i] == 0;                                       \
        if (b_single && batch > 1 && M * batch <= INT_MAX && foldable(&a, y, nb, M)) { \
            FN(a.t, b.t, M * batch, N, K, a.data, a.ld, b.data, b.ld, Y, N);   \
            return;                                                            \
        }                                                                      \
        int64_t idx[NB_MAX_DIMS] = {0}, oa = 0, ob = 0;                        \
        for (int64_t r = 0; r < batch; r++, Y += M * N) {                      \
            FN(a.t, b.t, M, N, K, (const T *)a.data + oa, a.ld,                \
               (const T *)b.data + ob, b.ld, Y, N);                            \
            for (int i = nb - 1; i >= 0; i--) {                                \
                oa += a.batch[i];                                              \
                ob += b.batch[i];                                              \
                if (++idx[i] < y->shape[i])                                    \
                    break;                                                     \
                oa -= a.batch[i] * y->shape[i];                                \
                ob -= b.batch[i] * y->shape[i];                                \
                idx[i] = 0;                                                    \
            }                                                                  \
        }                                                                      \
    }
GEMM(float, nb__gemm_f32)
GEMM(double, nb__gemm_f64)

static nb_tensor *mT(nb_tensor *t) { return nb_transpose(t, -2, -1); }

static void matmul_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                            int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    /* A weight's gradient goes straight into its .grad when offered. */
    if (x[0]->requires_grad)
        dx[0] = nb__apply_into(nb__grad_into(0), &nb_op_matmul, (nb_tensor *[]){dy, mT(x[1])},
                               2, NULL);
    if (x[1]->requires_grad)
        dx[1] = nb__apply_into(nb__grad_into(1), &nb_op_matmul, (nb_tensor *[]){mT(x[0]), dy},
                               2, NULL);
}

/* Row b of y: row b of a when b is a matrix (y's rows are a's), else batch b
 * of each operand with all of y's batch dimensions and its first one. */
static unsigned matmul_batch(nb_tensor *const x[], int n, const void *attr)
{
    (void)n, (void)attr;
    const nb_tensor *a = x[0], *b = x[1];
    if (b->ndim == 2)
        return NB_INPUT(0);
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t first = 1;
    for (int i = 0; i < 2; i++)
        if (x[i]->ndim == nd && x[i]->shape[0] != 1)
            first = x[i]->shape[0];
    unsigned mask = 0;
    for (int i = 0; i < 2; i++)
        if (x[i]->ndim == nd && x[i]->shape[0] == first)
            mask |= NB_INPUT(i);
    return mask;
}

/* Transposed and strided operands come from the table's layouts (gradcheck
 * runs every example on permuted, sliced and broadcast views too). */
static const nb_op_example examples[] = {
    {.n = 2, .ndim = {2, 2}, .shape = {{3, 4}, {4, 5}}},
    {.n = 2, .ndim = {2, 2}, .shape = {{1, 4}, {4, 1}}},
    /* batched, and a batch times one matrix (the folded gemm) */
    {.n = 2, .ndim = {3, 3}, .shape = {{2, 3, 4}, {2, 4, 5}}},
    {.n = 2, .ndim = {3, 2}, .shape = {{2, 3, 4}, {4, 2}}},
    {.n = 2, .ndim = {2, 3}, .shape = {{3, 4}, {2, 4, 2}}},
    /* batch dims broadcast both ways: (2,1) with (3,) -> (2,3) */
    {.n = 2, .ndim = {4, 3}, .shape = {{2, 1, 3, 4}, {3, 4, 2}}},
    {.n = 2, .ndim = {3, 4}, .shape = {{3, 2, 4}, {2, 1, 4, 3}}},
    {.n = 0},
};

const nb_op nb_op_matmul = {.name = "matmul", .arity = 2, .shape = matmul_shape,
                            .forward = {[NB_F32] = matmul_float, [NB_F64] = matmul_double},
                            .backward = matmul_backward, .broadcast = true,
                            .saves = NB_SAVES_X(0) | NB_SAVES_X(1), .batch = matmul_batch,
                            .examples = examples};

nb_tensor *nb_matmul(nb_tensor *a, nb_tensor *b)
{
    return nb_apply(&nb_op_matmul, (nb_tensor *[]){a, b}, 2, NULL);
}
