/* The allocator hook, heap tensors, and graph arenas.
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

static nb_allocator hook = {default_alloc, default_free, NULL};
static _Atomic int64_t live_tensors;

void nb_set_allocator(const nb_allocator *a)
{
    if (a && a->alloc && a->free)
        hook = *a;
    else
        hook = (nb_allocator){default_alloc, default_free, NULL};
}

int64_t nb_live_tensors(void) { return live_tensors; }

/* Each block remembers the hook that made it, so it goes back to the same one. */
typedef struct {
    void *raw;
    nb_allocator by;
} block_header;

void *nb__alloc(size_t size)
{
    const size_t align = 64, extra = align + sizeof(block_header);
    if (size > SIZE_MAX - extra) {
        nb__error("nabla: allocation of %zu bytes is too large", size);
        return NULL;
    }
    void *raw = hook.alloc(size + extra, hook.ctx);
    if (!raw) {
        nb__error("nabla: out of memory allocating %zu bytes", size);
        return NULL;
    }
    uintptr_t p = ((uintptr_t)raw + sizeof(block_header) + align - 1) & ~(uintptr_t)(align - 1);
    block_header *h = (block_header *)p - 1;
    h->raw = raw;
    h->by = hook;
    return (void *)p;
}

void nb__free(void *p)
{
    if (!p)
        return;
    block_header *h = (block_header *)p - 1;
    h->by.free(h->raw, h->by.ctx);
}

/* ---- heap tensors ---- */

/* Metadata common to heap and graph tensors; data is set by the caller. */
static void init_header(nb_tensor *t, nb_dtype dtype, int ndim, const int64_t *shape,
                        uint8_t storage)
{
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->version = &t->own_version;
    t->storage = storage;
}

nb_tensor *nb__new_heap_tensor(nb_dtype dtype, int ndim, const int64_t *shape)
{
    if (!nb__dtype_ok(dtype)) {
        nb__error("nabla: unknown dtype %d", (int)dtype);
        return NULL;
    }
    if (ndim < 0 || ndim > NB_MAX_DIMS || (ndim > 0 && !shape)) {
        nb__error("nabla: a shape needs 0 to %d dimensions, got %d", NB_MAX_DIMS, ndim);
        return NULL;
    }
    int64_t numel = 1;
    bool empty = false;
    for (int i = 0; i < ndim; i++)
        empty |= shape[i] == 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (!empty && shape[i] > 0 && numel > INT64_MAX / 8 / shape[i])) {
            char b[96];
            nb__error("nabla: invalid shape %s", nb__dims_str(ndim, shape, b));
            return NULL;
        }
        numel = empty ? 0 : numel * shape[i];
    }
    size_t head = (sizeof(nb_tensor) + 63) & ~(size_t)63;
    size_t bytes = (size_t)numel * nb__dtype_size(dtype);
    nb_tensor *t = nb__alloc(head + bytes);
    if (!t)
        return NULL;
    init_header(t, dtype, ndim, shape, NB_HEAP);
    t->numel = numel; /* checked above, also where a huge shape has a 0 */
    t->data = (char *)t + head;
    live_tensors++;
    return t;
}

void nb_free(nb_tensor *t)
{
    if (!t || t->storage != NB_HEAP)
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
    /* scope stack: each entry is the full path "a/b" in the arena */
    const char *scopes[32];
    int nscopes;
};

static _Thread_local nb_graph *current;

nb_graph *nb__graph(void) { return current; }
nb_graph *nb_graph_current(void) { return current; }

nb_graph *nb_graph_new(void)
{
    nb_graph *g = nb__alloc(sizeof *g);
    if (!g)
        return NULL;
    memset(g, 0, sizeof *g);
    g->prev = current;
    current = g;
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
    if (current == g)
        current = g->prev;
    else
        for (nb_graph *h = current; h; h = h->prev)
            if (h->prev == g) {
                h->prev = g->prev;
                break;
            }
    nb__free(g);
}

int64_t nb_graph_nodes(const nb_graph *g) { return g ? g->nodes : 0; }

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

nb_tensor *nb__new_graph_tensor(nb_graph *g, nb_dtype dtype, int ndim,
                                const int64_t *shape, bool alloc_data)
{
    nb_tensor *t = nb__arena_alloc(g, sizeof *t);
    if (!t)
        return NULL;
    init_header(t, dtype, ndim, shape, NB_ARENA);
    t->numel = nb__numel(ndim, shape);
    t->id = g->next_id++;
    if (alloc_data) {
        t->data = nb__arena_alloc(g, (size_t)t->numel * nb__dtype_size(dtype));
        if (!t->data)
            return NULL;
    }
    return t;
}

/* ---- scopes (kept here because they live in the graph) ---- */

int nb_scope_push(const char *name)
{
    nb_graph *g = current;
    if (!g)
        return nb__error("nb_scope_push: no current graph (call nb_graph_new first)");
    if (!name || !*name)
        return nb__error("nb_scope_push: empty scope name");
    if (g->nscopes == 32)
        return nb__error("nb_scope_push: scopes nest at most 32 deep");
    const char *parent = g->nscopes ? g->scopes[g->nscopes - 1] : NULL;
    size_t lp = parent ? strlen(parent) + 1 : 0, ln = strlen(name);
    char *path = nb__arena_alloc(g, lp + ln + 1);
    if (!path)
        return -1;
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
    if (current && current->nscopes > 0)
        current->nscopes--;
}

const char *nb__scope(nb_graph *g) { return g->nscopes ? g->scopes[g->nscopes - 1] : NULL; }
void nb__count_node(nb_graph *g) { g->nodes++; }
