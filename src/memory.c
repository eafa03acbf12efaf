/* The allocator hook, shape validation, heap tensors, and graph arenas.
 *
 * An arena is a list of chunks. Reset rewinds to the first chunk and keeps
 * them all, so a step that needs what the last one needed allocates nothing.
 *
 * Allocation failures say what failed: inside a public function's error
 * scope (nb_error_scope_begin) the message is prefixed with its name, else
 * it reads "nabla: out of memory ..." and the public function it surfaces
 * through renames it (nb__name_error), so a user reads "nb_matmul: ...". */
#include "internal.h"

#include <stdatomic.h>
#include <stdlib.h>

#ifdef NB_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* The largest block nabla asks the allocator for: a request beyond it cannot
 * succeed (the address space is 2^47 bytes on x86-64), and refusing it here
 * keeps the error clean in every build (AddressSanitizer would print a
 * warning for anything above its own limit of 2^40). */
#if defined(NB_ASAN)
#define MAX_ALLOC ((size_t)1 << 40)
#elif SIZE_MAX > 0xFFFFFFFFu
#define MAX_ALLOC ((size_t)1 << 47)
#else
#define MAX_ALLOC (SIZE_MAX / 2)
#endif

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
    const char *who = th->entry_fn ? "" : "nabla: ";
    if (size > MAX_ALLOC - extra) {
        nb__memory_error("%sallocation of %zu bytes is too large (one allocation can be at "
                         "most %zu bytes here)", who, size, (size_t)MAX_ALLOC);
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
static inline void init_header(nb_tensor *t, nb_dtype dtype, int ndim, const int64_t *shape,
                               int64_t numel, uint8_t lifetime)
{
    /* Every field set, one by one (a new field must be set here): zeroing
     * the whole header first cost more than the rest of it, and this runs
     * for every op. The arrays are zero past ndim: rules copy them whole. */
    t->dtype = dtype;
    t->ndim = ndim;
    memset(t->shape, 0, sizeof t->shape);
    memset(t->strides, 0, sizeof t->strides);
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    nb__strides(ndim, t->shape, t->strides);
    t->offset = 0;
    t->numel = numel;
    t->storage = &t->own;
    t->own = (nb_storage){.bytes = (size_t)numel * nb__dtype_size(dtype)};
    t->lifetime = lifetime;
    t->contiguous = true;
    t->requires_grad = false;
    t->param = false;
    t->grad = NULL;
    t->grad_zero = false;
    t->grad_partial = false;
    t->node = NULL;
    t->name = NULL;
    t->id = 0;
}

nb_tensor *nb__new_heap_tensor(const char *fn, nb_dtype dtype, int ndim, const int64_t *shape)
{
    if (!nb__dtype_ok(dtype)) {
        nb__dtype_error("%s: unknown dtype %d (use NB_F32, NB_F64 or NB_U8)", fn, (int)dtype);
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

/* ---- lifetimes ----
 *
 * What a stale tensor is and how each kind is caught (docs/reliability.md):
 *
 * - A graph holds a slot of the registry below. nb__slot_gen[slot] is the
 *   graph's current generation, 0 once it is freed; every graph tensor's
 *   storage keeps its slot and generation, so nb__live is one load.
 * - Graph tensor headers do not live in the data arena but in a ring of
 *   header chunks that reset does not rewind: new headers go after the
 *   last ones, and a chunk is reused only when it holds nothing of the
 *   current or the previous generation. So the header of a tensor kept from
 *   before the last reset is never overwritten by a new tensor, and still
 *   holds its old stamp: using it is an error, not a read of whatever the
 *   arena holds now. Older headers keep their stamp until the ring comes
 *   round to them (then, in any build, the pointer may name a current
 *   tensor). After nb_graph_free the ring is freed with the graph: reading
 *   a header then is a use after free (reported by ASan builds; plain builds
 *   usually still see the stamp, with no guarantee).
 * - Heap storages count the generations that use them (views, recorded
 *   nodes). nb_free of a heap tensor still in use marks it freed and leaves
 *   the memory to the last such generation's reset or free, so the graph
 *   can report "was freed (nb_free)" instead of reading freed memory.
 * - ASan builds poison the data arena on reset (and free returns it), so a
 *   raw pointer kept from nb_data of a graph tensor is reported when read. */


_Atomic uint64_t nb__slot_gen[NB__MAX_GRAPHS];
/* The first generation of the graph in each slot (to tell "reset" from
 * "freed"), the graph itself, and the free slots: under slots_lock. */
static _Atomic uint64_t slot_first[NB__MAX_GRAPHS];
static nb_graph *slot_graph[NB__MAX_GRAPHS];
static uint32_t free_slots[NB__MAX_GRAPHS];
static uint32_t nfree, high_water = 1; /* slot 0 is never a graph's */
static atomic_flag slots_lock = ATOMIC_FLAG_INIT;

static void lock_slots(void)
{
    while (atomic_flag_test_and_set_explicit(&slots_lock, memory_order_acquire))
        ;
}
static void unlock_slots(void) { atomic_flag_clear_explicit(&slots_lock, memory_order_release); }

/* Frees a heap tensor's memory (its name and block). */
static void release_heap(nb_tensor *t)
{
    nb__free(t->name);
    nb__free(t);
}

void nb_free(nb_tensor *t)
{
    if (!t || t->lifetime != NB_HEAP)
        return;
    uint32_t old = __atomic_fetch_or(&t->own.refs, 1u, __ATOMIC_ACQ_REL);
    if (old & 1u) {
        /* Only seen while a graph still holds it: otherwise it is gone. */
        nb__state_error("nb_free: the tensor%s%s%s was already freed", t->name ? " '" : "",
                        t->name ? t->name : "", t->name ? "'" : "");
        return;
    }
    nb_tensor *grad = t->grad;
    t->grad = NULL;
    nb_free(grad);
    live_tensors--;
    if (old == 0)
        release_heap(t);
    /* else: the last graph generation using it releases it (unpin). */
}

int nb__stale_error(const char *fn, const char *what, const nb_tensor *t)
{
    const nb_storage *s = nb__storage_live(&t->own) ? t->storage : &t->own;
    /* "input 1 is a view of a tensor ...", "the tensor is of ..." */
    bool plain = strcmp(what, "tensor") == 0;
    char subject[128];
    snprintf(subject, sizeof subject, "%s%s is %s", plain ? "the " : "", what,
             s != &t->own ? "a view of a tensor " : plain ? "" : "a tensor ");
    if (!s->gen)
        return nb__state_error("%s: %s%s%s freed (nb_free) while graph tensors still used it",
                               fn, plain ? "the " : "", what,
                               s != &t->own ? " is a view of a tensor that was"
                               : plain      ? " was"
                                            : " is a tensor that was");
    uint32_t slot = s->slot & (NB__MAX_GRAPHS - 1);
    uint64_t now = atomic_load_explicit(&nb__slot_gen[slot], memory_order_relaxed);
    uint64_t first = atomic_load_explicit(&slot_first[slot], memory_order_relaxed);
    if (!now || s->gen < first)
        return nb__state_error("%s: %sof graph generation %llu, whose graph was freed", fn,
                               subject, (unsigned long long)s->gen);
    return nb__state_error("%s: %sof graph generation %llu, which was reset (now %llu)", fn,
                           subject, (unsigned long long)s->gen, (unsigned long long)now);
}

/* ---- graphs ---- */

typedef nb__chunk chunk;
typedef nb__hchunk hchunk;
enum { HEADER = (sizeof(nb_tensor) + 63) & ~(size_t)63, HEADERS_PER_CHUNK = 128 };

static _Atomic uint64_t generations;

nb_graph *nb__graph(void) { return nb__thread()->graph; }
nb_graph *nb_graph_current(void) { return nb__thread()->graph; }

/* Whether g is a live graph, without reading *g unless it is: the thread's
 * chain of graphs first (the common case), then the registry. */
static bool graph_live(const nb_graph *g)
{
    for (const nb_graph *h = nb__thread()->graph; h; h = h->prev)
        if (h == g)
            return true;
    bool found = false;
    lock_slots();
    for (uint32_t i = 1; i < high_water && !found; i++)
        found = slot_graph[i] == g;
    unlock_slots();
    return found;
}

/* NULL (quietly, as before), or not live: an error naming fn. */
static bool bad_graph(const nb_graph *g, const char *fn)
{
    if (!g)
        return true;
    if (graph_live(g))
        return false;
    nb__state_error("%s: %p is not a live graph (freed already, or never made by "
                    "nb_graph_new)", fn, (const void *)g);
    return true;
}

nb_graph *nb_graph_new(void)
{
    nb_graph *g = nb__alloc(sizeof *g);
    if (!g) {
        nb__memory_error("nb_graph_new: out of memory for a graph (%zu bytes)", sizeof *g);
        return NULL;
    }
    memset(g, 0, sizeof *g);
    lock_slots();
    uint32_t slot = nfree ? free_slots[--nfree] : high_water < NB__MAX_GRAPHS ? high_water++ : 0;
    if (slot)
        slot_graph[slot] = g;
    unlock_slots();
    if (!slot) {
        nb__free(g);
        nb__memory_error("nb_graph_new: %d graphs are live, the most there can be at once",
                         NB__MAX_GRAPHS - 1);
        return NULL;
    }
    g->slot = slot;
    g->generation = ++generations;
    atomic_store_explicit(&slot_first[slot], g->generation, memory_order_relaxed);
    atomic_store_explicit(&nb__slot_gen[slot], g->generation, memory_order_release);
    g->pins = (nb_vec){.elem = sizeof(nb_storage *), .g = g};
    g->prev = nb__thread()->graph;
    nb__thread()->graph = g;
    return g;
}

int nb__pin_heap(nb_graph *g, nb_storage *s)
{
    if (__atomic_load_n(&s->pinned, __ATOMIC_RELAXED) == g->generation)
        return 0;
    if (nb__vec_reserve(&g->pins, 1))
        return nb__memory_error("out of memory recording a use of a heap tensor");
    ((nb_storage **)g->pins.v)[g->pins.n++] = s;
    __atomic_fetch_add(&s->refs, 2u, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pinned, g->generation, __ATOMIC_RELAXED);
    return 0;
}

/* Lets go of the heap storages the ending generation used: one that was
 * freed in the meantime goes away with its last user. */
static void unpin_all(nb_graph *g)
{
    nb_storage **s = g->pins.v;
    for (int64_t i = 0; i < g->pins.n; i++)
        if (__atomic_fetch_sub(&s[i]->refs, 2u, __ATOMIC_ACQ_REL) == 3u)
            release_heap((nb_tensor *)((char *)s[i] - offsetof(nb_tensor, own)));
    g->pins = (nb_vec){.elem = sizeof(nb_storage *), .g = g};
}

/* The next generation; the data arena rewound (and poisoned in ASan builds). */
static void new_generation(nb_graph *g)
{
    unpin_all(g);
    for (chunk *c = g->first; c; c = c->next) {
        POISON(c->mem, c->used);
        c->used = 0;
    }
    g->cur = g->first;
    g->used = 0;
    g->nodes = 0;
    g->next_id = 0;
    g->nscopes = 0;
    g->header_bytes = 0;
    g->walk = NULL;
    g->walk_cap = 0;
    g->walk_busy = false;
    g->previous = g->generation;
    g->generation = ++generations;
    atomic_store_explicit(&nb__slot_gen[g->slot], g->generation, memory_order_release);
}

void nb_graph_reset(nb_graph *g)
{
    if (bad_graph(g, "nb_graph_reset"))
        return;
    new_generation(g);
}

void nb_graph_free(nb_graph *g)
{
    if (bad_graph(g, "nb_graph_free"))
        return;
    unpin_all(g);
    for (chunk *c = g->first, *n; c; c = n) {
        n = c->next;
        nb__free(c);
    }
    /* Each block holds two chunks, not always side by side in the ring:
     * the blocks are listed first, then freed. */
    hchunk *blocks = NULL;
    for (hchunk *c = g->hfirst, *n; c; c = n) {
        n = c->next;
        if (c->owns_block) {
            c->next = blocks;
            blocks = c;
        }
    }
    for (hchunk *c = blocks, *n; c; c = n) {
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
    atomic_store_explicit(&nb__slot_gen[g->slot], 0, memory_order_release);
    lock_slots();
    slot_graph[g->slot] = NULL;
    free_slots[nfree++] = g->slot;
    unlock_slots();
    nb__free(g);
}

int64_t nb_graph_nodes(const nb_graph *g)
{
    return bad_graph(g, "nb_graph_nodes") ? 0 : g->nodes;
}
uint64_t nb_graph_generation(const nb_graph *g)
{
    return bad_graph(g, "nb_graph_generation") ? 0 : g->generation;
}

size_t nb_graph_bytes(const nb_graph *g)
{
    return bad_graph(g, "nb_graph_bytes") ? 0 : g->used + g->header_bytes;
}

int nb_graph_set_limit(nb_graph *g, size_t bytes)
{
    if (!g)
        return nb__error("nb_graph_set_limit: graph is NULL");
    if (bad_graph(g, "nb_graph_set_limit"))
        return -1;
    g->limit = bytes;
    return 0;
}

size_t nb_graph_limit(const nb_graph *g)
{
    return bad_graph(g, "nb_graph_limit") ? 0 : g->limit;
}

/* Whether size more bytes would take g past its limit (then an error). The
 * headers count: nb_graph_bytes is what the limit is about. */
static bool over_limit(const nb_graph *g, size_t size)
{
    size_t in_use = g->used + g->header_bytes;
    if (!g->limit || (size <= g->limit && in_use <= g->limit - size))
        return false;
    nb__memory_error("%sthe graph's memory limit of %zu bytes (nb_graph_set_limit) is reached: "
                     "%zu bytes in use, %zu more requested",
                     nb__thread()->entry_fn ? "" : "nabla: ", g->limit, in_use, size);
    return true;
}

/* Another chunk for a request the current ones cannot take (or an error):
 * the first that can, else a new one appended. */
static chunk *arena_grow(nb_graph *g, size_t size)
{
    chunk *c = g->cur;
    while (c && c->size - c->used < size)
        c = c->next;
    if (c)
        return c;
    /* 1 MB chunks, or one as large as the request; under a limit no
     * larger than the limit, so a small cap keeps the memory small. */
    size_t unit = (size_t)1 << 20;
    if (g->limit && g->limit < unit)
        unit = g->limit;
    size_t want = size > unit ? size : unit;
    size_t head = (sizeof(chunk) + 63) & ~(size_t)63;
    c = nb__alloc(head + want);
    if (!c) {
        nb__memory_error("%sout of memory for another %zu bytes of graph memory (%zu in use)",
                         nb__thread()->entry_fn ? "" : "nabla: ", want, g->used);
        return NULL;
    }
    c->next = NULL;
    c->size = want;
    c->used = 0;
    c->mem = (char *)c + head;
    POISON(c->mem, want); /* unpoisoned piece by piece as it is handed out */
    /* Append so that the order of chunks is the order of use. */
    if (!g->first)
        g->first = c;
    else {
        chunk *last = g->first;
        while (last->next)
            last = last->next;
        last->next = c;
    }
    return c;
}

void *nb__arena_alloc_slow(nb_graph *g, size_t size)
{
    /* Half the address space at most, so that neither the rounding below
     * nor a chunk's header can wrap the size around. */
    if (size > SIZE_MAX / 2) {
        nb__memory_error("%sa graph allocation of %zu bytes is too large",
                         nb__thread()->entry_fn ? "" : "nabla: ", size);
        return NULL;
    }
    size = (size + 63) & ~(size_t)63;
    if (over_limit(g, size))
        return NULL;
    chunk *c = g->cur;
    if (!c || c->size - c->used < size) {
        if (!(c = arena_grow(g, size)))
            return NULL;
        g->cur = c;
    }
    void *p = c->mem + c->used;
    c->used += size;
    g->used += size;
    UNPOISON(p, size);
    return p;
}

/* A tensor header from g's ring: the current chunk, else the next one if it
 * holds nothing of this generation or the one before, else two new chunks
 * (one allocation) after the current one. */
static nb_tensor *header_alloc(nb_graph *g)
{
    if (over_limit(g, HEADER))
        return NULL;
    hchunk *c = g->hcur;
    if (!c || c->used == HEADERS_PER_CHUNK) {
        hchunk *next = c ? (c->next ? c->next : g->hfirst) : g->hfirst;
        if (next && next != c && (!next->newest || next->newest < g->previous)) {
            c = next;
            c->used = 0;
        } else {
            size_t head = (sizeof(hchunk) + 63) & ~(size_t)63;
            size_t one = head + (size_t)HEADERS_PER_CHUNK * HEADER;
            char *block = nb__alloc(2 * one);
            if (!block)
                return NULL;
            hchunk *a = (hchunk *)block, *b = (hchunk *)(block + one);
            *a = (hchunk){.owns_block = true, .mem = block + head};
            *b = (hchunk){.mem = block + one + head};
            a->next = b;
            if (c) {
                b->next = c->next;
                c->next = a;
            } else {
                b->next = g->hfirst;
                g->hfirst = a;
            }
            c = a;
        }
        g->hcur = c;
    }
    c->newest = g->generation;
    g->header_bytes += HEADER;
    return (nb_tensor *)(c->mem + (size_t)c->used++ * HEADER);
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
    nb_tensor *t = header_alloc(g);
    if (!t)
        return NULL;
    init_header(t, dtype, ndim, shape, nb__numel(ndim, shape), NB_ARENA);
    t->own.slot = g->slot;
    t->own.gen = g->generation;
    t->id = g->next_id++;
    if (alloc_data) {
        t->own.data = nb__arena_alloc(g, t->own.bytes);
        if (!t->own.data)
            return NULL;
    }
    return t;
}

/* One table per generation, reused by each walk with a new stamp, so a
 * walk costs what its history costs, not the graph's size; grown (a fresh
 * copy, old ones left to the reset) when the graph has more tensors. */
int nb__walk_table(nb_graph *g, nb_walk *w)
{
    if (g->walk_busy || g->next_id > INT32_MAX)
        return 0; /* a walk inside a walk (a rule calling nb_grad) uses a map */
    if (++g->walk_stamp == 0 || g->walk_cap < g->next_id) {
        /* A little room for what a backward pass adds before the next
         * walk; doubling when walks keep growing the graph. */
        int64_t cap = g->walk_cap;
        if (cap < g->next_id)
            cap = 2 * cap > g->next_id ? 2 * cap : g->next_id + g->next_id / 8 + 64;
        nb_walk_slot *t = g->walk_cap < g->next_id ? nb__arena_alloc(g, (size_t)cap * sizeof *t)
                                                   : g->walk;
        if (!t)
            return -1;
        memset(t, 0, (size_t)cap * sizeof *t);
        g->walk = t;
        g->walk_cap = cap;
        g->walk_stamp = 1;
    }
    g->walk_busy = true;
    w->ids = g->walk;
    w->nids = g->walk_cap;
    w->stamp = g->walk_stamp;
    w->gen = g->generation;
    w->owner = g;
    return 0;
}

void nb__walk_table_release(nb_walk *w)
{
    /* Only the generation that lent it takes it back. */
    if (w->ids && w->owner->generation == w->gen)
        w->owner->walk_busy = false;
    w->ids = NULL;
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


