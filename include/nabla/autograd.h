/* nabla: the dynamic graph and reverse-mode autodiff.
 *
 * A graph is an arena. While it is current, every op computes its result at
 * once, allocates it in the graph, and (when gradients are enabled and an
 * input requires them) records a node. Resetting the graph frees all of it;
 * after a warm-up step, a step of the same shape allocates nothing. */
#ifndef NABLA_AUTOGRAD_H
#define NABLA_AUTOGRAD_H

#include "kernel.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_graph nb_graph;

/* Creates a graph and makes it current on this thread (graphs nest: the
 * previous one becomes current again when this one is freed). */
nb_graph *nb_graph_new(void);
/* Frees every tensor the graph holds; the graph stays current and its
 * memory is kept for the next step. A tensor of the graph kept aside is then
 * stale: every op, backward, nb_grad, print and accessor refuses it with
 * NB_ERR_STATE ("nb_add: input 1 is a tensor of graph generation 3, which was
 * reset (now 4)"). Tensor headers are not reused by the next generation, so
 * a tensor of the generation just before is always caught; older ones until
 * the graph's header memory comes round to them again (a few hundred to
 * thousands of tensors later). A raw nb_data pointer kept across a reset is
 * not checked: AddressSanitizer builds report its use (the released memory
 * is poisoned). */
void nb_graph_reset(nb_graph *g);
/* Frees the graph and its tensors; the graph it replaced becomes current.
 * The graph functions refuse a freed handle with NB_ERR_STATE (NULL is a
 * no-op). A tensor of a freed graph is a use after free: reported by
 * AddressSanitizer builds, usually also caught by the stamp otherwise. */
void nb_graph_free(nb_graph *g);
/* The current graph, or NULL. */
nb_graph *nb_graph_current(void);
/* Nodes recorded and bytes in use since the last reset. */
int64_t nb_graph_nodes(const nb_graph *g);
size_t nb_graph_bytes(const nb_graph *g);
/* Caps the bytes g may hold at once, as nb_graph_bytes counts them (0, the
 * default: no cap). An op, backward or scope that would go past the cap
 * fails like any out-of-memory error, naming itself, the limit and the
 * request: "nb_matmul: the graph's memory limit of 65536 bytes
 * (nb_graph_set_limit) is reached: 65024 bytes in use, 1024 more
 * requested". A reset frees the room again; the cap stays. Under a cap
 * below 1 MB, the graph's memory grows in pieces no larger than the cap.
 * 0, or -1 when g is NULL. */
int nb_graph_set_limit(nb_graph *g, size_t bytes);
/* The cap of g, 0 for none. */
size_t nb_graph_limit(const nb_graph *g);
/* A number unique to g's current contents: it changes on every reset and
 * differs between graphs, so a tensor of g kept aside is still valid while
 * nb_graph_generation(g) returns what it did when the tensor was made. */
uint64_t nb_graph_generation(const nb_graph *g);

/* Names the ops recorded until the matching pop ("dense"); scopes nest as
 * "model/dense" and become clusters in graph pictures. 0 or -1. */
int nb_scope_push(const char *name);
void nb_scope_pop(void);

/* Turns recording on or off on this thread; returns the previous state.
 * Off is "no-grad" mode: inference and optimizer updates. */
bool nb_set_grad_enabled(bool on);
bool nb_is_grad_enabled(void);

/* Anomaly mode, for finding where a NaN or an infinity comes from: turns it
 * on or off on this thread (off by default; off, it costs one flag test per
 * op); returns the previous state. While on, the first op whose forward
 * output holds a NaN or an infinity it produced fails (NULL), and so does
 * the backward (-1) at the first rule whose gradient holds one, with
 *   "nb_log: produced -inf in the forward at element (3,1) (scope
 *    dense_1/log, input (32,10)); anomaly mode is on".
 * A NaN is reported at the first op that holds one even when an input
 * already held it (data, parameters); an infinity passed on from an input
 * (a mask of -inf) is not. docs/graphs.md has the rule. */
bool nb_set_detect_anomaly(bool on);
bool nb_is_anomaly_enabled(void);
/* The tensor of this thread's last anomaly: the output of the op that
 * failed in the forward (its history is recorded, so it can be a picture's
 * root), of the op whose backward rule failed, or the tensor whose
 * gradients added up to an infinity. NULL when there was none, or once its
 * graph is reset, freed or no longer current. Graph pictures fill it red
 * with nb_dot_opts.anomaly. */
nb_tensor *nb_anomaly_tensor(void);

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
 * into grads[i] without touching any .grad (so threads with graphs of their
 * own may differentiate through shared parameters at once). With
 * .create_graph the results are differentiable again. 0, or -1 on error.
 *   nb_grad(loss, .n = 2, .inputs = xs, .grads = gs, .create_graph = true) */
#define nb_grad(...) nb_grad_((nb_grad_args){.output = __VA_ARGS__})
int nb_grad_(nb_grad_args a);

#ifdef __cplusplus
}
#endif
#endif
