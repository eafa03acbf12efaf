/* The allocator hook, shape validation, heap tensors, and graph arenas.
 *
 * An arena is a list of chunks. Reset rewinds to the first chunk and keeps
 * them all, so a step that needs what the last one needed allocates nothing. */
#include "internal.h"

#include <stdatomic.h>
#include <stdlib.h>

static void *default_alloc(size_t size, void *ctx)
{
    (void)ctx;
    return malloc(size);
}
static void default_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}

/* Hooks are copied into slots that never change once published, so a
 * thread allocating while another installs a hook reads a whole one, and a
 * block can point at the hook that made it for as long as it lives. */
enum { MAX_HOOKS = 16 };
static nb_allocator hooks[MAX_HOOKS] = {{default_alloc, default_free, NULL}};
static int nhooks = 1;
static atomic_flag hooks_lock = ATOMIC_FLAG_INIT;
static _Atomic(const nb_allocator *) hook = &hooks[0];
static _Atomic int64_t live_tensors;

int nb_set_allocator(const nb_allocator *a)
{
    if (a && (!a->alloc || !a->free))
        return nb__error("nb_set_allocator: the allocator needs both alloc and free");
    while (atomic_flag_test_and_set_explicit(&hooks_lock, memory_order_acquire))
        ;
    int rc = 0, k = 0;
    if (a) {
        k = -1;
        for (int i = 0; i < nhooks && k < 0; i++)
            if (hooks[i].alloc == a->alloc && hooks[i].free == a->free && hooks[i].ctx == a->ctx)
                k = i;
        if (k < 0 && nhooks < MAX_HOOKS) {
            hooks[nhooks] = *a;
            k = nhooks++;
        }
    }
    if (k < 0)
        rc = nb__error("nb_set_allocator: %d distinct allocators already installed (the most "
                       "a process may use)", MAX_HOOKS - 1);
    else
        atomic_store_explicit(&hook, &hooks[k], memory_order_release);
    atomic_flag_clear_explicit(&hooks_lock, memory_order_release);
    return rc;
}

int64_t nb_live_tensors(void) { return live_tensors; }

/* Each block remembers the hook that made it, so it goes back to the same one. */
typedef struct {
    void *raw;
    const nb_allocator *by;
} block_header;

void *nb__alloc(size_t size)
{
    const size_t align = 64, extra = align + sizeof(block_header);
    /* Named after the public function running (nb_error_scope_begin), or
     * "nabla" when none is: callers that know better rename it. */
    nb_thread *th = nb__thread();
    const char *who = th->entry_fn || th->entry_op ? "" : "nabla: ";
    if (size > SIZE_MAX - extra) {
        nb__memory_error("%sallocation of %zu bytes is too large", who, size);
        return NULL;
    }
    const nb_allocator *h = atomic_load_explicit(&hook, memory_order_acquire);
    void *raw = h->alloc(size + extra, h->ctx);
    if (!raw) {
        nb__memory_error("%sout of memory allocating %zu bytes", who, size);
        return NULL;
    }
    uintptr_t p = ((uintptr_t)raw + sizeof(block_header) + align - 1) & ~(uintptr_t)(align - 1);
    block_header *b = (block_header *)p - 1;
    b->raw = raw;
    b->by = h;
    return (void *)p;
}

void nb__free(void *p)
{
    if (!p)
        return;
    block_header *b = (block_header *)p - 1;
    b->by->free(b->raw, b->by->ctx);
}

void *nb_mem_alloc(size_t size) { NB__NAMED("nb_mem_alloc", void *, nb__alloc(size)); }
void nb_mem_free(void *p) { nb__free(p); }

/* ---- shapes ---- */

/* A refusal: the message only when there is a function to name (a quiet
 * check runs for every op, and its caller names the op on failure). */
#define REFUSE(...) (fn ? nb__shape_error(__VA_ARGS__) : -1)

int nb__check_shape(const char *fn, int ndim, const int64_t *shape, int64_t *numel)
{
    char b[NB_SHAPE_STR_LEN];
    if (ndim < 0 || ndim > NB_MAX_DIMS)
        return REFUSE("%s: a shape has 0 to %d dimensions, got %d", fn, NB_MAX_DIMS, ndim);
    if (ndim > 0 && !shape)
        return fn ? nb__error("%s: shape is NULL (%d dimensions)", fn, ndim) : -1;
    /* The product of the non-zero sizes stays within NB_MAX_NUMEL, so no
     * stride or partial product can overflow either; a multiply with an
     * overflow check, not a division, since this runs for every op. */
    int64_t n = 1;
    bool empty = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return REFUSE("%s: dimension %d is %lld in shape %s", fn, i, (long long)shape[i],
                          nb_dims_str(ndim, shape, b));
        if (shape[i] == 0) {
            empty = true;
            continue;
        }
        if (__builtin_mul_overflow(n, shape[i], &n) || n > NB_MAX_NUMEL)
            return REFUSE("%s: shape %s has more than 2^48 elements (NB_MAX_NUMEL)", fn,
                          nb_dims_str(ndim, shape, b));
    }
    if ((uint64_t)n > SIZE_MAX / 8)
        return REFUSE("%s: shape %s is too large for this machine's address space", fn,
                      nb_dims_str(ndim, shape, b));
    *numel = empty ? 0 : n;
    return 0;
}
#undef REFUSE

bool nb__layout_contiguous(int ndim, const int64_t *shape, const int64_t *strides)
{
    int64_t expect = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        if (shape[i] == 0)
            return true;
        if (shape[i] == 1)
            continue;
        if (strides[i] != expect)
            return false;
        expect *= shape[i];
    }
    return true;
}

bool nb__layout_overlaps(int ndim, const int64_t *shape, const int64_t *strides)
{
    /* Views are made by permute, slice, broadcast and reshape, so memory is
     * shared only through a 0 stride; anything else is checked by sorting
     * the dimensions by stride: each stride must clear the extent of the
     * smaller ones. */
    int64_t sz[NB_MAX_DIMS], st[NB_MAX_DIMS];
    int m = 0;
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0)
            return false; /* no elements, nothing shared */
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 1)
            continue;
        if (strides[i] == 0)
            return true;
        sz[m] = shape[i];
        st[m++] = strides[i] < 0 ? -strides[i] : strides[i];
    }
    for (int i = 1; i < m; i++)
        for (int j = i; j > 0 && st[j] < st[j - 1]; j--) {
            int64_t a = st[j], b = sz[j];
            st[j] = st[j - 1], sz[j] = sz[j - 1];
            st[j - 1] = a, sz[j - 1] = b;
        }
    int64_t extent = 0;
    for (int i = 0; i < m; i++) {
        if (st[i] <= extent)
            return true;
        extent += (sz[i] - 1) * st[i];
    }
    return false;
}

/* ---- heap tensors ---- */

/* Metadata common to heap and graph tensors: contiguous, its own storage
 * (data set by the caller). */
static void init_header(nb_tensor *t, nb_dtype dtype, int ndim, const int64_t *shape,
                        int64_t numel, uint8_t lifetime)
{
    /* Every field set; the shape and stride arrays only up to ndim. */
    *t = (nb_tensor){.dtype = dtype, .ndim = ndim};
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    nb__strides(ndim, t->shape, t->strides);
    t->numel = numel;
    t->storage = &t->own;
    t->own.bytes = (size_t)numel * nb__dtype_size(dtype);
    t->lifetime = lifetime;
    t->contiguous = true;
}

nb_tensor *nb__new_heap_tensor(const char *fn, nb_dtype dtype, int ndim, const int64_t *shape)
{
    if (!nb__dtype_ok(dtype)) {
        nb__dtype_error("%s: unknown dtype %d (use NB_F32 or NB_F64)", fn, (int)dtype);
        return NULL;
    }
    int64_t numel;
    if (nb__check_shape(fn, ndim, shape, &numel))
        return NULL;
    size_t head = (sizeof(nb_tensor) + 63) & ~(size_t)63;
    size_t bytes = (size_t)numel * nb__dtype_size(dtype);
    if (bytes > SIZE_MAX - head) {
        nb__memory_error("%s: %zu bytes is too large", fn, bytes);
        return NULL;
    }
    nb_tensor *t = nb__alloc(head + bytes);
    if (!t) {
        char b[NB_SHAPE_STR_LEN];
        nb__memory_error("%s: out of memory for a %s %s tensor (%zu bytes)", fn,
                         nb_dtype_name(dtype),
                  nb_dims_str(ndim, shape, b), bytes);
        return NULL;
    }
    init_header(t, dtype, ndim, shape, numel, NB_HEAP);
    t->own.data = (char *)t + head;
    live_tensors++;
    return t;
}

void nb_free(nb_tensor *t)
{
    if (!t || t->lifetime != NB_HEAP)
        return;
    nb_free(t->grad);
    nb__free(t->name);
    live_tensors--;
    nb__free(t);
}

/* ---- graphs ---- */

typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    char *mem;
} chunk;

struct nb_graph {
    chunk *first, *cur;
    nb_graph *prev;
    int64_t nodes, next_id;
    uint64_t generation;
    /* scope stack: each entry is the full path "a/b" in the arena */
    const char *scopes[32];
    int nscopes;
};

static _Atomic uint64_t generations;

nb_graph *nb__graph(void) { return nb__thread()->graph; }
nb_graph *nb_graph_current(void) { return nb__thread()->graph; }

nb_graph *nb_graph_new(void)
{
    nb_graph *g = nb__alloc(sizeof *g);
    if (!g)
        return NULL;
    memset(g, 0, sizeof *g);
    g->generation = ++generations;
    g->prev = nb__thread()->graph;
    nb__thread()->graph = g;
    return g;
}

void nb_graph_reset(nb_graph *g)
{
    if (!g)
        return;
    for (chunk *c = g->first; c; c = c->next)
        c->used = 0;
    g->cur = g->first;
    g->nodes = 0;
    g->next_id = 0;
    g->nscopes = 0;
    g->generation = ++generations;
}

void nb_graph_free(nb_graph *g)
{
    if (!g)
        return;
    for (chunk *c = g->first, *n; c; c = n) {
        n = c->next;
        nb__free(c);
    }
    /* Unlink from the current-graph chain wherever it sits. */
    nb_graph **current = &nb__thread()->graph;
    if (*current == g)
        *current = g->prev;
    else
        for (nb_graph *h = *current; h; h = h->prev)
            if (h->prev == g) {
                h->prev = g->prev;
                break;
            }
    nb__free(g);
}

int64_t nb_graph_nodes(const nb_graph *g) { return g ? g->nodes : 0; }
uint64_t nb_graph_generation(const nb_graph *g) { return g ? g->generation : 0; }

size_t nb_graph_bytes(const nb_graph *g)
{
    size_t n = 0;
    if (g)
        for (chunk *c = g->first; c; c = c->next)
            n += c->used;
    return n;
}

void *nb__arena_alloc(nb_graph *g, size_t size)
{
    if (size > SIZE_MAX - 64 - sizeof(chunk)) {
        nb__memory_error("%sa graph allocation of %zu bytes is too large",
                         nb__thread()->entry_fn || nb__thread()->entry_op ? "" : "nabla: ", size);
        return NULL;
    }
    size = (size + 63) & ~(size_t)63;
    chunk *c = g->cur;
    while (c && c->size - c->used < size)
        c = c->next;
    if (!c) {
        size_t want = size > ((size_t)1 << 20) ? size : ((size_t)1 << 20);
        size_t head = (sizeof(chunk) + 63) & ~(size_t)63;
        c = nb__alloc(head + want);
        if (!c)
            return NULL;
        c->next = NULL;
        c->size = want;
        c->used = 0;
        c->mem = (char *)c + head;
        /* Append so that the order of chunks is the order of use. */
        if (!g->first)
            g->first = c;
        else {
            chunk *last = g->first;
            while (last->next)
                last = last->next;
            last->next = c;
        }
    }
    g->cur = c;
    void *p = c->mem + c->used;
    c->used += size;
    return p;
}

char *nb__arena_strdup(nb_graph *g, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = nb__arena_alloc(g, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

nb_tensor *nb__new_graph_tensor(nb_graph *g, nb_dtype dtype, int ndim, const int64_t *shape,
                                bool alloc_data)
{
    nb_tensor *t = nb__arena_alloc(g, sizeof *t);
    if (!t)
        return NULL;
    init_header(t, dtype, ndim, shape, nb__numel(ndim, shape), NB_ARENA);
    t->id = g->next_id++;
    if (alloc_data) {
        t->own.data = nb__arena_alloc(g, t->own.bytes);
        if (!t->own.data)
            return NULL;
    }
    return t;
}

/* ---- scopes (kept here because they live in the graph) ---- */

int nb_scope_push(const char *name)
{
    nb_graph *g = nb__graph();
    if (!g)
        return nb__state_error("nb_scope_push: no current graph (call nb_graph_new first)");
    if (!name || !*name)
        return nb__error("nb_scope_push: empty scope name");
    if (g->nscopes == 32)
        return nb__state_error("nb_scope_push: scopes nest at most 32 deep");
    const char *parent = g->nscopes ? g->scopes[g->nscopes - 1] : NULL;
    size_t lp = parent ? strlen(parent) + 1 : 0, ln = strlen(name);
    char *path = nb__arena_alloc(g, lp + ln + 1);
    if (!path)
        return nb__memory_error("nb_scope_push: out of memory for the scope '%s'", name);
    if (parent) {
        memcpy(path, parent, lp - 1);
        path[lp - 1] = '/';
    }
    memcpy(path + lp, name, ln + 1);
    g->scopes[g->nscopes++] = path;
    return 0;
}

void nb_scope_pop(void)
{
    nb_graph *g = nb__graph();
    if (g && g->nscopes > 0)
        g->nscopes--;
}

const char *nb__scope(nb_graph *g) { return g->nscopes ? g->scopes[g->nscopes - 1] : NULL; }
void nb__count_node(nb_graph *g) { g->nodes++; }
