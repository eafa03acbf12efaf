/* nabla: the dynamic graph, reverse-mode autodiff and user-defined ops.
 *
 * A graph is an arena. While it is current, every op computes its result at
 * once, allocates it in the graph, and (when gradients are enabled and an
 * input requires them) records a node. Resetting the graph frees all of it;
 * after a warm-up step, a step of the same shape allocates nothing. */
#ifndef NABLA_AUTOGRAD_H
#define NABLA_AUTOGRAD_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_graph nb_graph;

/* Creates a graph and makes it current on this thread (graphs nest: the
 * previous one becomes current again when this one is freed). */
nb_graph *nb_graph_new(void);
/* Frees every tensor the graph holds; the graph stays current and its
 * memory is kept for the next step. */
void nb_graph_reset(nb_graph *g);
/* Frees the graph and its tensors; the graph it replaced becomes current. */
void nb_graph_free(nb_graph *g);
/* The current graph, or NULL. */
nb_graph *nb_graph_current(void);
/* Nodes recorded and bytes in use since the last reset. */
int64_t nb_graph_nodes(const nb_graph *g);
size_t nb_graph_bytes(const nb_graph *g);

/* Names the ops recorded until the matching pop ("dense_1"); scopes nest as
 * "model/dense_1" and become clusters in graph pictures. 0 or -1. */
int nb_scope_push(const char *name);
void nb_scope_pop(void);

/* Turns recording on or off on this thread; returns the previous state.
 * Off is "no-grad" mode: inference and optimizer updates. */
bool nb_set_grad_enabled(bool on);
bool nb_is_grad_enabled(void);

/* ---- backward -------------------------------------------------------------- */

typedef struct nb_backward_args {
    nb_tensor *root;   /* the tensor to differentiate */
    nb_tensor *seed;   /* d(root); NULL means 1 and needs a one-element root */
    bool retain_graph; /* allow another backward through the same nodes */
} nb_backward_args;

/* nb_backward(loss) or nb_backward(y, .seed = dy, .retain_graph = true):
 * adds d(root)/d(leaf) into the .grad of every leaf that requires grad
 * (gradients accumulate: zero them with nb_zero_grad). 0, or -1 on error. */
#define nb_backward(...) nb_backward_((nb_backward_args){.root = __VA_ARGS__})
int nb_backward_(nb_backward_args a);

typedef struct nb_grad_args {
    nb_tensor *output;        /* what to differentiate */
    int n;                    /* number of inputs */
    nb_tensor *const *inputs; /* with respect to these */
    nb_tensor **grads;        /* out: n gradients, in the current graph */
    nb_tensor *seed;          /* d(output); NULL means 1 (one-element output) */
    bool create_graph;        /* record the backward pass: grads of grads */
    bool retain_graph;        /* keep the graph (implied by create_graph) */
    bool allow_unused;        /* an input the output does not use gets NULL
                                 instead of an error */
} nb_grad_args;

/* Functional gradient, like torch.autograd.grad: writes d(output)/d(input i)
 * into grads[i] without touching any .grad. With .create_graph the results
 * are differentiable again. 0, or -1 on error.
 *   nb_grad(loss, .n = 2, .inputs = xs, .grads = gs, .create_graph = true) */
#define nb_grad(...) nb_grad_((nb_grad_args){.output = __VA_ARGS__})
int nb_grad_(nb_grad_args a);

/* ---- ops: the struct built-in and user-defined ops share ------------------- */

/* What an op's shape rule fills in for its output. */
typedef struct nb_meta {
    nb_dtype dtype;
    int ndim;
    int64_t shape[NB_MAX_DIMS];
} nb_meta;

typedef struct nb_op nb_op;

/* Bits of nb_op.saves: which tensors the backward rule reads, so that writing
 * to them in place after recording is caught. 0 means "all of them". */
#define NB_SAVES_X(i) (1u << (i))
#define NB_SAVES_Y (1u << 30)
#define NB_SAVES_NONE (1u << 31)

/* Where gradcheck draws an input of an example from (e.g. log wants x > 0). */
typedef struct nb_domain {
    double lo, hi;
    bool away_from_zero; /* |x| >= (hi - lo) / 10: keeps off kinks and poles */
} nb_domain;

/* An example application of an op, for gradcheck tables and `nabla gradcheck`. */
typedef struct nb_op_example {
    int n;                         /* inputs */
    int ndim[8];                   /* per input */
    int64_t shape[8][NB_MAX_DIMS]; /* per input */
    nb_domain domain[8];           /* per input; all zero: [-1, 1] */
    const void *attr;              /* attributes for this example */
    bool once_differentiable;      /* skip the second-order check */
} nb_op_example;

struct nb_op {
    const char *name; /* "tanh"; errors read "nb_tanh: ..." for built-ins */
    int arity;        /* number of inputs; -1: any number (at least one) */
    size_t attr_size; /* bytes of attribute struct copied into the node */
    /* Output dtype and shape, or -1 after nb_op_error() explains why. */
    int (*shape)(nb_meta *out, nb_tensor *const x[], int n, const void *attr);
    /* Computes y (allocated from the shape rule) from x. */
    void (*forward)(nb_tensor *y, nb_tensor *const x[], int n, const void *attr);
    /* Sets dx[i] for each input that requires grad, written with nabla ops so
     * that it can itself be differentiated. NULL: the output has no gradient
     * (comparisons, argmax). */
    void (*backward)(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                     nb_tensor *const x[], int n, const void *attr);
    unsigned saves; /* NB_SAVES_* bits, see above */
    bool view;      /* forward makes y share x[0]'s storage (built-ins only) */
    const nb_op_example *examples; /* gradcheck examples, ended by n == 0 */
};

/* Applies op to n inputs: checks, allocates, runs forward, records a node.
 * This is how every op runs, built-in or user-defined. NULL on error. */
nb_tensor *nb_apply(const nb_op *op, nb_tensor *const x[], int n, const void *attr);

/* For shape rules: sets the error "nb_<op>: <message>" and returns -1. */
int nb_op_error(const nb_op *op, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Shape rules for the common cases: same as x[0]; NumPy broadcast of all. */
int nb_shape_same(nb_meta *out, nb_tensor *const x[], int n, const void *attr);
int nb_shape_broadcast(nb_meta *out, nb_tensor *const x[], int n, const void *attr);

/* The op that produced t, or NULL for a leaf. */
const nb_op *nb_op_of(const nb_tensor *t);
/* The built-in ops, ended by NULL; nb_op_find looks one up by name. */
const nb_op *const *nb_builtin_ops(void);
const nb_op *nb_op_find(const char *name);

#ifdef __cplusplus
}
#endif
#endif
