/* matmul with optional transposes of either operand (last two dimensions):
 *   y = op(a) @ op(b),  op(t) = t^T if its flag is set, else t.
 * Shapes: (..., m, k) @ (..., k, n) -> (..., m, n) after the transposes; both
 * operands at least 2-D; the batch dimensions (...) broadcast like NumPy.
 * Backward, from d op(a) = dy op(b)^T and d op(b) = op(a)^T dy:
 *   ta tb   da                       db
 *   0  0    matmul_t(dy, b, 0, 1)    matmul_t(a, dy, 1, 0)
 *   0  1    matmul_t(dy, b, 0, 0)    matmul_t(dy, a, 1, 0)
 *   1  0    matmul_t(b, dy, 0, 1)    matmul_t(a, dy, 0, 0)
 *   1  1    matmul_t(b, dy, 1, 1)    matmul_t(dy, a, 1, 1)
 * each summed back (sum_to) over batch dimensions the input was broadcast in.
 * The kernel is OpenBLAS gemm with CblasTrans flags (no copies): one call for
 * 2-D @ 2-D (and for a batch @ a 2-D matrix, folded into one tall gemm),
 * otherwise one call per broadcast batch element. */
#include "internal.h"

#include <cblas.h>
#include <limits.h>

typedef struct {
    bool ta, tb;
} matmul_attr;

extern const nb_op nb_op_matmul;

/* Rows / columns of op(t) for a tensor with at least 2 dims. */
static int64_t rows_of(const nb_tensor *t, bool tr) { return t->shape[t->ndim - (tr ? 1 : 2)]; }
static int64_t cols_of(const nb_tensor *t, bool tr) { return t->shape[t->ndim - (tr ? 2 : 1)]; }

static int matmul_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    const matmul_attr *at = attr;
    const nb_tensor *a = x[0], *b = x[1];
    char p[96], q[96];
    const char *sa = at->ta ? "^T" : "", *sb = at->tb ? "^T" : "";
    if (a->ndim < 2 || b->ndim < 2)
        return nb_op_error(&nb_op_matmul,
                           "both operands need at least 2 dimensions, got %s%s @ %s%s "
                           "(reshape a vector to (1,k) or (k,1))",
                           nb__shape_str(a, p), sa, nb__shape_str(b, q), sb);
    if (a->dtype != b->dtype)
        return nb_op_error(&nb_op_matmul, "dtypes differ: %s %s @ %s %s",
                           nb_dtype_name(a->dtype), nb__shape_str(a, p),
                           nb_dtype_name(b->dtype), nb__shape_str(b, q));
    if (cols_of(a, at->ta) != rows_of(b, at->tb))
        return nb_op_error(&nb_op_matmul, "inner dimensions differ: %s%s @ %s%s",
                           nb__shape_str(a, p), sa, nb__shape_str(b, q), sb);
    for (int i = 1; i <= 2; i++)
        if (a->shape[a->ndim - i] > INT_MAX || b->shape[b->ndim - i] > INT_MAX)
            return nb_op_error(&nb_op_matmul, "matrix dimensions above %d are not supported: "
                               "%s @ %s", INT_MAX, nb__shape_str(a, p), nb__shape_str(b, q));
    int nd = nb__broadcast_shape(a->ndim - 2, a->shape, b->ndim - 2, b->shape, out->shape);
    if (nd < 0)
        return nb_op_error(&nb_op_matmul, "batch dimensions do not broadcast: %s%s @ %s%s",
                           nb__shape_str(a, p), sa, nb__shape_str(b, q), sb);
    out->dtype = a->dtype;
    out->ndim = nd + 2;
    out->shape[nd] = rows_of(a, at->ta);
    out->shape[nd + 1] = cols_of(b, at->tb);
    return 0;
}

/* Element strides of t's matrices along the output's nd batch dims (0 where
 * t is broadcast). */
static void batch_strides(const nb_tensor *t, int nd, int64_t *st)
{
    int64_t s = t->shape[t->ndim - 2] * t->shape[t->ndim - 1];
    for (int i = nd - 1; i >= 0; i--) {
        int k = i - (nd - (t->ndim - 2));
        st[i] = (k < 0 || t->shape[k] == 1) ? 0 : s;
        if (k >= 0)
            s *= t->shape[k];
    }
}

#define GEMM(T, FN, y, a, b, at)                                               \
    do {                                                                       \
        int nd = (y)->ndim - 2;                                                \
        int64_t M = (y)->shape[nd], N = (y)->shape[nd + 1];                    \
        int64_t K = cols_of(a, (at)->ta);                                      \
        int64_t lda = (a)->shape[(a)->ndim - 1], ldb = (b)->shape[(b)->ndim - 1]; \
        int64_t batch = nb__numel(nd, (y)->shape);                             \
        T *Y = (T *)(y)->data;                                                 \
        const T *A = (const T *)(a)->data, *B = (const T *)(b)->data;          \
        enum CBLAS_TRANSPOSE tA = (at)->ta ? CblasTrans : CblasNoTrans;        \
        enum CBLAS_TRANSPOSE tB = (at)->tb ? CblasTrans : CblasNoTrans;        \
        if ((y)->numel == 0)                                                   \
            break;                                                             \
        if (K == 0) {                                                          \
            memset(Y, 0, (size_t)(y)->numel * sizeof(T));                      \
            break;                                                             \
        }                                                                      \
        /* b one matrix, a not transposed: the batch is just more rows. */     \
        if (nb__numel((b)->ndim - 2, (b)->shape) == 1 && !(at)->ta &&          \
            M * batch <= INT_MAX) {                                            \
            FN(CblasRowMajor, tA, tB, (blasint)(M * batch), (blasint)N,        \
               (blasint)K, 1, A, (blasint)lda, B, (blasint)ldb, 0, Y,          \
               (blasint)N);                                                    \
            break;                                                             \
        }                                                                      \
        int64_t sa[NB_MAX_DIMS], sb[NB_MAX_DIMS], idx[NB_MAX_DIMS] = {0};      \
        batch_strides(a, nd, sa);                                              \
        batch_strides(b, nd, sb);                                              \
        int64_t oa = 0, ob = 0;                                                \
        for (int64_t r = 0; r < batch; r++, Y += M * N) {                      \
            FN(CblasRowMajor, tA, tB, (blasint)M, (blasint)N, (blasint)K, 1,   \
               A + oa, (blasint)lda, B + ob, (blasint)ldb, 0, Y, (blasint)N);  \
            for (int i = nd - 1; i >= 0; i--) {                                \
                oa += sa[i];                                                   \
                ob += sb[i];                                                   \
                if (++idx[i] < (y)->shape[i])                                  \
                    break;                                                     \
                oa -= sa[i] * (y)->shape[i];                                   \
                ob -= sb[i] * (y)->shape[i];                                   \
                idx[i] = 0;                                                    \
            }                                                                  \
        }                                                                      \
    } while (0)

static void matmul_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    const matmul_attr *at = attr;
    const nb_tensor *a = x[0], *b = x[1];
    if (y->dtype == NB_F64)
        GEMM(double, cblas_dgemm, y, a, b, at);
    else
        GEMM(float, cblas_sgemm, y, a, b, at);
}

/* Sums a gradient with broadcast batch dims back to the input's shape. */
static nb_tensor *to(nb_tensor *g, const nb_tensor *x)
{
    return !g || nb__same_shape(g, x) ? g : nb_sum_to(g, x->ndim, x->shape);
}

static void matmul_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                            int n, const void *attr)
{
    (void)y, (void)n;
    const matmul_attr *at = attr;
    nb_tensor *a = x[0], *b = x[1];
    bool ta = at->ta, tb = at->tb;
    if (a->requires_grad) {
        nb_tensor *g = !ta ? nb_matmul_t(dy, b, false, !tb) : nb_matmul_t(b, dy, tb, true);
        dx[0] = to(g, a);
    }
    if (b->requires_grad) {
        nb_tensor *g = !tb ? nb_matmul_t(a, dy, !ta, false) : nb_matmul_t(dy, a, true, ta);
        dx[1] = to(g, b);
    }
}

static const matmul_attr nn = {false, false}, nt = {false, true}, tn = {true, false},
                         tt = {true, true};
static const nb_op_example examples[] = {
    {.n = 2, .ndim = {2, 2}, .shape = {{3, 4}, {4, 5}}, .attr = &nn},
    {.n = 2, .ndim = {2, 2}, .shape = {{3, 4}, {5, 4}}, .attr = &nt},
    {.n = 2, .ndim = {2, 2}, .shape = {{4, 3}, {4, 5}}, .attr = &tn},
    {.n = 2, .ndim = {2, 2}, .shape = {{4, 3}, {5, 4}}, .attr = &tt},
    /* batched, and a batch times one matrix (the folded gemm) */
    {.n = 2, .ndim = {3, 3}, .shape = {{2, 3, 4}, {2, 4, 5}}, .attr = &nn},
    {.n = 2, .ndim = {3, 2}, .shape = {{2, 3, 4}, {4, 2}}, .attr = &nn},
    {.n = 2, .ndim = {2, 3}, .shape = {{3, 4}, {2, 4, 2}}, .attr = &nn},
    /* batch dims broadcast both ways: (2,1) with (3,) -> (2,3) */
    {.n = 2, .ndim = {4, 3}, .shape = {{2, 1, 3, 4}, {3, 4, 2}}, .attr = &nn},
    {.n = 2, .ndim = {4, 3}, .shape = {{2, 1, 4, 3}, {3, 2, 4}}, .attr = &tt},
    {.n = 2, .ndim = {3, 4}, .shape = {{3, 2, 4}, {2, 1, 2, 3}}, .attr = &tn},
    {.n = 2, .ndim = {3, 3}, .shape = {{1, 2, 3}, {2, 4, 3}}, .attr = &nt},
    {.n = 0},
};

const nb_op nb_op_matmul = {.name = "matmul", .arity = 2, .attr_size = sizeof(matmul_attr),
                            .shape = matmul_shape, .forward = matmul_forward,
                            .backward = matmul_backward,
                            .saves = NB_SAVES_X(0) | NB_SAVES_X(1), .examples = examples};

nb_tensor *nb_matmul_t(nb_tensor *a, nb_tensor *b, bool transpose_a, bool transpose_b)
{
    matmul_attr at = {transpose_a, transpose_b};
    return nb_apply(&nb_op_matmul, (nb_tensor *[]){a, b}, 2, &at);
}

nb_tensor *nb_matmul(nb_tensor *a, nb_tensor *b) { return nb_matmul_t(a, b, false, false); }
