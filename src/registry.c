/* The built-in ops, for `nabla ops`, `nabla gradcheck` and the test table.
 * Nothing needs registering to run: a user op works without being here. */
#include "internal.h"

#define OPS(X)                                                                 \
    X(add) X(sub) X(mul) X(div) X(pow) X(maximum) X(minimum)                   \
    X(eq) X(ne) X(lt) X(le) X(gt) X(ge) X(where) X(sign)                       \
    X(neg) X(exp) X(log) X(sqrt) X(abs) X(tanh) X(tanh_grad) X(sigmoid) X(sigmoid_grad) X(erf) X(relu) X(relu_grad) X(clamp)    \
    X(cast) X(detach) X(contiguous) X(full_like)                                         \
    X(sum) X(sum_to) X(broadcast_to) X(max) X(argmax)                          \
    X(matmul)                                                                  \
    X(reshape) X(permute) X(slice) X(slice_scatter) X(concat)                  \
    X(index_select) X(index_add) X(one_hot)                                    \
    X(im2col) X(col2im) X(pool_select) X(pool_scatter)                     \
    X(conv2d) X(conv2d_input_grad) X(conv2d_kernel_grad)

#define DECLARE(name) extern const nb_op nb_op_##name;
OPS(DECLARE)
#define ENTRY(name) &nb_op_##name,
static const nb_op *const builtins[] = {OPS(ENTRY) NULL};

const nb_op *const *nb_builtin_ops(void) { return builtins; }

const nb_op *nb_op_find(const char *name)
{
    if (!name)
        return NULL;
    for (const nb_op *const *p = builtins; *p; p++)
        if (strcmp((*p)->name, name) == 0)
            return *p;
    return NULL;
}

bool nb__is_builtin(const nb_op *op)
{
    for (const nb_op *const *p = builtins; *p; p++)
        if (*p == op)
            return true;
    return false;
}
