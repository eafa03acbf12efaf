/* The counted bad-argument test, part 2: nb_apply, autograd, memory and
 * threads, pictures, files, models and optimizers, gradient checks (bad_args.h says
 * what a case checks). */
#define _POSIX_C_SOURCE 200809L
#include "bad_args.h"

/* ---- user ops through nb_apply ---- */

NB_UNARY_KERNELS(copy, u)
typedef struct {
    int ndim;
    int64_t dims[NB_MAX_DIMS + 2];
    nb_dtype dtype;
    bool view;
    int64_t offset;
} rule_attr;
static int rule_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)x, (void)n;
    const rule_attr *a = attr;
    out->dtype = a->dtype;
    out->ndim = a->ndim;
    for (int i = 0; i < a->ndim && i < NB_MAX_DIMS; i++)
        out->shape[i] = a->dims[i];
    out->view = a->view;
    out->offset = a->offset;
    for (int i = 0; i < NB_MAX_DIMS; i++)
        out->strides[i] = 1;
    return 0;
}
static const nb_op urule = {.name = "urule", .arity = 1, .attr_size = sizeof(rule_attr),
                            .shape = rule_shape, .forward = NB_KERNELS(copy),
                            .no_gradient = true};
static const nb_op f64only = {.name = "f64only", .arity = 1, .shape = nb_shape_same,
                              .forward = {[NB_F64] = copy_f64}, .no_gradient = true};
static const nb_op nograd = {.name = "nograd", .arity = 1, .shape = nb_shape_same,
                             .forward = NB_KERNELS(copy)};
static const nb_op pair = {.name = "pair", .arity = 2, .shape = nb_shape_broadcast,
                           .forward = NB_KERNELS(copy), .no_gradient = true};
static int rule_says(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)out, (void)x, (void)n, (void)attr;
    return nb_set_error("my message"); /* named after the op by the engine */
}
static const nb_op says = {.name = "says", .arity = 1, .shape = rule_says,
                           .forward = NB_KERNELS(copy), .no_gradient = true};
static const nb_op noname = {.arity = 1, .shape = nb_shape_same};
static const nb_op norule = {.name = "norule", .arity = 1};

static void test_apply(void **state)
{
    (void)state;
    SECTION_BEGIN();
    nb_tensor *x[] = {f23, f23, f23};
    CASE("nb_apply", INV, nb_apply(NULL, x, 1, NULL) == NULL);
    CASE("nb_apply", INV, nb_apply(&noname, x, 1, NULL) == NULL);
    CASE("nb_apply", INV, nb_apply(&norule, x, 1, NULL) == NULL);
    CASE("f64only", INV, nb_apply(&f64only, x, 2, NULL) == NULL);
    CASE("f64only", INV, nb_apply(&f64only, x, 0, NULL) == NULL);
    CASE("f64only", INV, nb_apply(&f64only, x, -1, NULL) == NULL);
    CASE("f64only", INV, nb_apply(&f64only, NULL, 1, NULL) == NULL);
    CASE("f64only", DTY, nb_apply(&f64only, x, 1, NULL) == NULL);
    CASE("urule", INV, nb_apply(&urule, x, 1, NULL) == NULL); /* attributes NULL */
    nb_tensor *p = p23;
    CASE("nograd", INV, nb_apply(&nograd, &p, 1, NULL) == NULL); /* backward not implemented */
    CASE("says", INV, nb_apply(&says, x, 1, NULL) == NULL);
    CASE("pair", SHP, nb_apply(&pair, (nb_tensor *[]){f23, f4}, 2, NULL) == NULL);
    CASE("pair", DTY, nb_apply(&pair, (nb_tensor *[]){f23, d23}, 2, NULL) == NULL);
    CASE("pair", INV, nb_apply(&pair, (nb_tensor *[]){f23, NULL}, 2, NULL) == NULL);
    for (int b = 0; b < 4; b++)
        CASE("pair", STA, nb_apply(&pair, (nb_tensor *[]){f23, bad_tensors()[b]}, 2, NULL) == NULL);
    /* What a user's shape rule may give, checked like any op's output. */
    for (int i = 0; i < NBAD; i++) {
        const bad_shape *b = &bad_shapes[i];
        if (!b->dims || b->ndim > NB_MAX_DIMS + 1)
            continue;
        rule_attr a = {.ndim = b->ndim, .dtype = NB_F32};
        for (int k = 0; k < b->ndim; k++)
            a.dims[k] = b->dims[k];
        CASE("urule", SHP, nb_apply(&urule, x, 1, &a) == NULL);
    }
    for (int i = 0; i < 3; i++) {
        rule_attr a = {.ndim = 1, .dims = {2}, .dtype = bad_dtypes[i]};
        CASE("urule", DTY, nb_apply(&urule, x, 1, &a) == NULL);
    }
    rule_attr bytes = {.ndim = 1, .dims = {2}, .dtype = NB_U8}; /* storage, not computed */
    CASE("urule", DTY, nb_apply(&urule, x, 1, &bytes) == NULL);
    rule_attr huge = {.ndim = 3, .dims = {1 << 21, 1 << 21, 1 << 21}, .dtype = NB_F32};
    CASE("urule", SHP, nb_apply(&urule, x, 1, &huge) == NULL);
    rule_attr wild = {.ndim = 2, .dims = {2, 3}, .dtype = NB_F32, .view = true, .offset = 4};
    CASE("urule", SHP, nb_apply(&urule, x, 1, &wild) == NULL); /* outside the storage */
    rule_attr neg = {.ndim = 1, .dims = {2}, .dtype = NB_F32, .view = true, .offset = -1};
    CASE("urule", SHP, nb_apply(&urule, x, 1, &neg) == NULL);
    rule_attr other = {.ndim = 1, .dims = {2}, .dtype = NB_F64, .view = true};
    CASE("urule", DTY, nb_apply(&urule, x, 1, &other) == NULL); /* a view keeps the dtype */
    CASE("myop", INV, nb_op_error(&(nb_op){.name = "myop"}, "bad %d", 1) == -1);
    /* The common shape rules, called directly. */
    nb_meta m;
    CASE("nb_shape_same", INV, nb_shape_same(NULL, x, 1, NULL) == -1);
    CASE("nb_shape_same", INV, nb_shape_same(&m, NULL, 1, NULL) == -1);
    CASE("nb_shape_same", INV, nb_shape_same(&m, x, 0, NULL) == -1);
    CASE("nb_shape_same", INV, nb_shape_same(&m, (nb_tensor *[]){NULL}, 1, NULL) == -1);
    CASE("nb_shape_broadcast", INV, nb_shape_broadcast(NULL, x, 2, NULL) == -1);
    CASE("nb_shape_broadcast", INV, nb_shape_broadcast(&m, NULL, 2, NULL) == -1);
    CASE("nb_shape_broadcast", INV, nb_shape_broadcast(&m, x, -1, NULL) == -1);
    CASE("nb_shape_broadcast", INV, nb_shape_broadcast(&m, (nb_tensor *[]){f23, NULL}, 2,
                                                       NULL) == -1);
    CASE("nb_shape_broadcast", SHP, nb_shape_broadcast(&m, (nb_tensor *[]){f23, f4}, 2,
                                                       NULL) == -1);
    CASE("nb_shape_broadcast", DTY, nb_shape_broadcast(&m, (nb_tensor *[]){f23, d23}, 2,
                                                       NULL) == -1);
    SECTION_END();
}

/* ---- autograd ---- */

static void test_autograd(void **state)
{
    (void)state;
    SECTION_BEGIN();
    nb_tensor *y = nb_sum(nb_mul(p23, p23));
    nb_tensor *v = nb_mul(p23, p23); /* not a scalar */
    nb_tensor *gr[2];
    CASE("nb_backward", INV, nb_backward(NULL) == -1);
    KEEP(nb_backward(NULL) == -1);
    CASE("nb_backward", INV, nb_backward(nb_sum(f23)) == -1); /* needs no grad */
    CASE("nb_backward", SHP, nb_backward(v) == -1);           /* no seed */
    CASE("nb_backward", SHP, nb_backward(v, .seed = f4) == -1);
    CASE("nb_backward", DTY, nb_backward(v, .seed = d23) == -1);
    CASE("nb_backward", DTY, nb_backward(y, .seed = nb_scalar_like(d23, 1)) == -1);
    for (int b = 0; b < 4; b++) {
        CASE("nb_backward", STA, nb_backward(bad_tensors()[b]) == -1);
        CASE("nb_backward", STA, nb_backward(v, .seed = bad_tensors()[b]) == -1);
    }
    CASE("nb_grad", INV, nb_grad(NULL, .n = 1, .inputs = &p23, .grads = gr) == -1);
    KEEP(nb_grad(NULL, .n = 1, .inputs = &p23, .grads = gr) == -1);
    CASE("nb_grad", INV, nb_grad(y, .n = 0, .inputs = &p23, .grads = gr) == -1);
    CASE("nb_grad", INV, nb_grad(y, .n = -1, .inputs = &p23, .grads = gr) == -1);
    CASE("nb_grad", INV, nb_grad(y, .n = 1, .inputs = NULL, .grads = gr) == -1);
    CASE("nb_grad", INV, nb_grad(y, .n = 1, .inputs = &p23, .grads = NULL) == -1);
    CASE("nb_grad", INV, nb_grad(y, .n = 2, .inputs = (nb_tensor *[]){p23, NULL}, .grads = gr) == -1);
    CASE("nb_grad", INV, nb_grad(y, .n = 1, .inputs = &f23, .grads = gr) == -1);
    nb_tensor *q = nb_param(nb_ones(NB_F32, NB_SHAPE(2)));
    CASE("nb_grad", INV, nb_grad(y, .n = 1, .inputs = &q, .grads = gr) == -1); /* unused */
    CASE("nb_grad", SHP, nb_grad(v, .n = 1, .inputs = &p23, .grads = gr) == -1);
    for (int b = 0; b < 4; b++) {
        CASE("nb_grad", STA, nb_grad(bad_tensors()[b], .n = 1, .inputs = &p23, .grads = gr) == -1);
        CASE("nb_grad", STA, nb_grad(y, .n = 1, .inputs = &bad_tensors()[b], .grads = gr) == -1);
    }
    nb_free(q);
    /* Backward twice without retain_graph: the graph was released. */
    nb_tensor *once = nb_sum(nb_exp(p23));
    assert_int_equal(nb_backward(once), 0);
    CASE("nb_backward", STA, nb_backward(once) == -1);
    CASE("nb_grad", STA, nb_grad(once, .n = 1, .inputs = &p23, .grads = gr) == -1);
    nb_zero_grad(p23);
    /* Scopes. */
    CASE("nb_scope_push", INV, nb_scope_push(NULL) == -1);
    CASE("nb_scope_push", INV, nb_scope_push("") == -1);
    int pushed = 0;
    while (pushed < 40 && nb_scope_push("s") == 0)
        pushed++;
    CASE("nb_scope_push", STA, nb_scope_push("deep") == -1);
    while (pushed--)
        nb_scope_pop();
    /* Graph handles that are no longer graphs. */
    nb_graph *dead = nb_graph_new();
    nb_graph_free(dead);
    CASE("nb_graph_reset", STA, (nb_graph_reset(dead), true));
    CASE("nb_graph_free", STA, (nb_graph_free(dead), true));
    CASE("nb_graph_nodes", STA, nb_graph_nodes(dead) == 0);
    CASE("nb_graph_bytes", STA, nb_graph_bytes(dead) == 0);
    CASE("nb_graph_generation", STA, nb_graph_generation(dead) == 0);
    int on_stack;
    nb_graph *never = (nb_graph *)&on_stack;
    CASE("nb_graph_reset", STA, (nb_graph_reset(never), true));
    CASE("nb_graph_free", STA, (nb_graph_free(never), true));
    CASE("nb_kernel_scratch", MEM, nb_kernel_scratch(SIZE_MAX) == NULL);
    CASE("nb_kernel_scratch", MEM, nb_kernel_scratch(SIZE_MAX - 100) == NULL);
    SECTION_END();
}

/* ---- memory ---- */

static void test_memory(void **state)
{
    (void)state;
    SECTION_BEGIN();
    CASE("nb_set_allocator", INV, nb_set_allocator(&(nb_allocator){count_alloc, NULL, NULL}) == -1);
    CASE("nb_set_allocator", INV, nb_set_allocator(&(nb_allocator){NULL, count_free, NULL}) == -1);
    CASE("nb_mem_alloc", MEM, nb_mem_alloc(SIZE_MAX) == NULL);
    /* threads: refused, the setting kept (tests/test_gemm.c checks that) */
    CASE("nb_set_num_threads", INV, nb_set_num_threads(0) == -1);
    CASE("nb_set_num_threads", INV, nb_set_num_threads(-1) == -1);
    CASE("nb_set_num_threads", INV, nb_set_num_threads(NB_MAX_THREADS + 1) == -1);
    CASE("nb_set_num_threads", INV, nb_set_num_threads(INT_MIN) == -1);
    CASE("nb_set_num_threads", INV, nb_set_num_threads(INT_MAX) == -1);
    CASE("nb_mem_alloc", MEM, nb_mem_alloc((size_t)1 << 60) == NULL);
    /* Out of memory for small requests: every allocation fails. */
    nb_graph *fresh = nb_graph_new(); /* no chunk yet: its first op allocates */
    alloc_budget = 0;
    nb_set_allocator(&failing_allocator);
    CASE("nb_zeros", MEM, nb_zeros(NB_F32, NB_SHAPE(2)) == NULL);
    CASE("nb_from_array", MEM, nb_from_array(NB_F32, NB_SHAPE(1), (float[]){1}) == NULL);
    CASE("nb_clone", MEM, nb_clone(f23) == NULL);
    CASE("nb_arange", MEM, nb_arange(NB_F32, 0, 4, 1) == NULL);
    CASE("nb_mem_alloc", MEM, nb_mem_alloc(16) == NULL);
    CASE("nb_graph_new", MEM, nb_graph_new() == NULL);
    CASE("nb_add", MEM, nb_add(f23, f23) == NULL);
    CASE("nb_reshape", MEM, nb_reshape(f23, NB_SHAPE(6)) == NULL);
    CASE("nb_softmax", MEM, nb_softmax(f23, 1) == NULL);
    CASE("nb_mean", MEM, nb_mean(f23) == NULL);
    CASE("nb_mse", MEM, nb_mse(f23, f23) == NULL);
    CASE("nb_gelu", MEM, nb_gelu(f23) == NULL);
    CASE("nb_kernel_scratch", MEM, nb_kernel_scratch(64) == NULL);
    CASE("nb_scope_push", MEM, nb_scope_push("layer") == -1);
    CASE("nb_dot_string", MEM, nb_dot_string(f23, NULL) == NULL);
    CASE("nb_dense", MEM, nb_dense(3) == NULL);
    CASE("nb_sgd", MEM, nb_sgd() == NULL);
    nb_set_allocator(NULL);
    nb_graph_free(fresh);
    SECTION_END();
}

/* ---- fused functions ---- */

static int fused_add(nb_tensor *out[], nb_tensor *const in[], void *ctx)
{
    (void)ctx;
    out[0] = nb_add(in[0], in[1]);
    return 0;
}
static int fused_sum(nb_tensor *out[], nb_tensor *const in[], void *ctx)
{
    (void)ctx;
    out[0] = nb_sum(in[0]);
    return 0;
}

static void test_fused(void **state)
{
    (void)state;
    SECTION_BEGIN();
    CASE("nb_fused_new", INV, nb_fused_new(NULL, 2, 1, fused_add, NULL) == NULL);
    CASE("nb_fused_new", INV, nb_fused_new("", 2, 1, fused_add, NULL) == NULL);
    CASE("nb_fused_new", INV, nb_fused_new("f", 2, 1, NULL, NULL) == NULL);
    CASE("nb_fused_new", INV, nb_fused_new("f", 0, 1, fused_add, NULL) == NULL);
    CASE("nb_fused_new", INV, nb_fused_new("f", NB_FUSED_MAX + 1, 1, fused_add, NULL) == NULL);
    CASE("nb_fused_new", INV, nb_fused_new("f", 2, 0, fused_add, NULL) == NULL);
    CASE("nb_fused_new", INV, nb_fused_new("f", 2, INT_MIN, fused_add, NULL) == NULL);
    nb_fused *f = nb_fused_new("f", 2, 1, fused_add, NULL);
    nb_fused *s = nb_fused_new("s", 1, 1, fused_sum, NULL);
    assert_non_null(f);
    assert_non_null(s);
    nb_tensor *out[1] = {NULL};
    CASE("nb_fused_apply", INV, nb_fused_apply(NULL, (nb_tensor *[]){f23, f23}, out) == -1);
    CASE("nb_fused_apply", INV, nb_fused_apply(f, NULL, out) == -1);
    CASE("nb_fused_apply", INV, nb_fused_apply(f, (nb_tensor *[]){f23, f23}, NULL) == -1);
    CASE("nb_fused_apply", INV, nb_fused_apply(f, (nb_tensor *[]){f23, NULL}, out) == -1);
    CASE("nb_fused_apply", SHP, nb_fused_apply(f, (nb_tensor *[]){f23, f4}, out) == -1);
    CASE("nb_fused_apply", DTY, nb_fused_apply(f, (nb_tensor *[]){f23, d23}, out) == -1);
    CASE("nb_fused_apply", STA, nb_fused_apply(f, (nb_tensor *[]){f23, stale}, out) == -1);
    CASE("nb_fused_apply", STA, nb_fused_apply(f, (nb_tensor *[]){stale_view, f23}, out) == -1);
    CASE("nb_fused_apply", INV, nb_fused_apply(s, (nb_tensor *[]){f23}, out) == -1);
    out[0] = f4;
    CASE("nb_fused_apply", SHP, nb_fused_apply(f, (nb_tensor *[]){f23, f23}, out) == -1);
    out[0] = stale;
    CASE("nb_fused_apply", STA, nb_fused_apply(f, (nb_tensor *[]){f23, f23}, out) == -1);
    out[0] = NULL;
    nb_fused_free(f);
    nb_fused_free(s);
    nb_fused_free(NULL);
    SECTION_END();
}

/* ---- pictures ---- */

static void test_dot(void **state)
{
    (void)state;
    SECTION_BEGIN();
    nb_tensor *y = nb_add(f23, f23);
    CASE("nb_dot_string", INV, nb_dot_string(NULL, NULL) == NULL);
    KEEP(nb_dot_string(NULL, NULL) == NULL);
    CASE("nb_dot_write", INV, nb_dot_write(NULL, "/tmp/x.dot", NULL) == -1);
    CASE("nb_dot_write", INV, nb_dot_write(y, NULL, NULL) == -1);
    CASE("nb_dot_write", IOE, nb_dot_write(y, "/nonexistent-dir/x.dot", NULL) == -1);
    CASE("nb_dot_render", INV, nb_dot_render(y, NULL, NULL) == -1);
    CASE("nb_dot_render", INV, nb_dot_render(y, "/tmp/x.gif", NULL) == -1);
    CASE("nb_dot_render", INV, nb_dot_render(NULL, "/tmp/x.svg", NULL) == -1);
    for (int b = 0; b < 4; b++) {
        CASE("nb_dot_string", STA, nb_dot_string(bad_tensors()[b], NULL) == NULL);
        CASE("nb_dot_write", STA, nb_dot_write(bad_tensors()[b], "/tmp/x.dot", NULL) == -1);
        CASE("nb_dot_render", STA, nb_dot_render(bad_tensors()[b], "/tmp/x.svg", NULL) == -1);
    }
    SECTION_END();
}

/* ---- files ---- */

static char dir[64], garbage[96], missing[96];

static void test_io(void **state)
{
    (void)state;
    SECTION_BEGIN();
    snprintf(dir, sizeof dir, "/tmp/nb_bad_args_XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(garbage, sizeof garbage, "%s/garbage", dir);
    snprintf(missing, sizeof missing, "%s/missing", dir);
    FILE *f = fopen(garbage, "wb");
    assert_non_null(f);
    fputs("this is not a file of tensors\n1,2,x\n", f);
    fclose(f);
    nb_tensor *a, *b, *c, *d, *out[4];
    CASE("nb_read_idx", INV, nb_read_idx(NULL) == NULL);
    CASE("nb_read_idx", IOE, nb_read_idx(missing) == NULL);
    CASE("nb_read_idx", FMT, nb_read_idx(garbage) == NULL);
    CASE("nb_load_mnist", INV, nb_load_mnist(NULL, &a, &b, &c, &d) == -1);
    CASE("nb_load_mnist", INV, nb_load_mnist(dir, NULL, &b, &c, &d) == -1);
    CASE("nb_load_mnist", INV, nb_load_mnist(dir, &a, &b, &c, NULL) == -1);
    CASE("nb_load_mnist", IOE, nb_load_mnist(dir, &a, &b, &c, &d) == -1);
    CASE("nb_read_csv", INV, nb_read_csv(NULL, 0, &a, &b) == -1);
    CASE("nb_read_csv", INV, nb_read_csv(garbage, 0, NULL, &b) == -1);
    CASE("nb_read_csv", INV, nb_read_csv(garbage, 0, &a, NULL) == -1);
    CASE("nb_read_csv", IOE, nb_read_csv(missing, 0, &a, &b) == -1);
    CASE("nb_read_csv", FMT, nb_read_csv(garbage, 0, &a, &b) == -1);
    CASE("nb_scale_images", INV, nb_scale_images(NULL) == NULL);
    CASE("nb_scale_images", SHP, nb_scale_images(f23) == NULL);
    CASE("nb_to_one_hot", INV, nb_to_one_hot(NULL, 3) == NULL);
    CASE("nb_to_one_hot", SHP, nb_to_one_hot(f23, 3) == NULL);
    CASE("nb_to_one_hot", INV, nb_to_one_hot(lab, 3) == NULL);
    CASE("nb_to_one_hot", INV, nb_to_one_hot(frac, 3) == NULL);
    CASE("nb_to_one_hot", INV, nb_to_one_hot(lab, 0) == NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
    nb_tensor *named = nb_set_name(nb_ones(NB_F32, NB_SHAPE(2)), "w");
    nb_tensor *other = nb_set_name(nb_ones(NB_F32, NB_SHAPE(3)), "w");
    CASE("nb_save_safetensors", INV, nb_save_safetensors(NULL, 1, &named) == -1);
    CASE("nb_save_safetensors", INV, nb_save_safetensors(path, -1, &named) == -1);
    CASE("nb_save_safetensors", INV, nb_save_safetensors(path, 1, NULL) == -1);
    CASE("nb_save_safetensors", INV, nb_save_safetensors(path, 1, (nb_tensor *[]){NULL}) == -1);
    CASE("nb_save_safetensors", INV, nb_save_safetensors(path, 1, &f23) == -1); /* no name */
    CASE("nb_save_safetensors", INV, nb_save_safetensors(path, 2, (nb_tensor *[]){named, other}) == -1);
    CASE("nb_save_safetensors", IOE, nb_save_safetensors("/nonexistent-dir/t.st", 1, &named) == -1);
    CASE("nb_save_safetensors", INV, nb_save_safetensors(path, 1, &named, .nmetadata = 1) == -1);
    CASE("nb_save_safetensors", INV, nb_save_safetensors(path, 1, &named, .nmetadata = -1) == -1);
    CASE("nb_save_safetensors", INV, nb_save_safetensors(path, 1, &named, .nmetadata = 1,
                                                         .metadata = (nb_metadata[]){{"k", NULL}}) == -1);
    assert_int_equal(nb_save_safetensors(path, 1, &named), 0);
    CASE("nb_load_safetensors", INV, nb_load_safetensors(NULL, 1, &named) == -1);
    CASE("nb_load_safetensors", INV, nb_load_safetensors(path, -1, &named) == -1);
    CASE("nb_load_safetensors", INV, nb_load_safetensors(path, 1, NULL) == -1);
    CASE("nb_load_safetensors", INV, nb_load_safetensors(path, 1, (nb_tensor *[]){NULL}) == -1);
    CASE("nb_load_safetensors", IOE, nb_load_safetensors(missing, 1, &named) == -1);
    CASE("nb_load_safetensors", FMT, nb_load_safetensors(garbage, 1, &named) == -1);
    CASE("nb_load_safetensors", SHP, nb_load_safetensors(path, 1, &other) == -1);
    nb_tensor *unknown = nb_set_name(nb_ones(NB_F32, NB_SHAPE(2)), "v");
    CASE("nb_load_safetensors", FMT, nb_load_safetensors(path, 1, &unknown) == -1);
    (void)out;
    nb_free(named);
    nb_free(other);
    nb_free(unknown);
    remove(path);
    remove(garbage);
    rmdir(dir);
    SECTION_END();
}

/* ---- models, optimizers ---- */

static double lossv, metricv;

/* A custom loss or metric: the mean squared error. */
static nb_tensor *my_fn(nb_tensor *output, nb_tensor *y, void *ctx)
{
    (void)ctx;
    return nb_mean(nb_square(nb_sub(output, y)));
}

static void test_nn(void **state)
{
    (void)state;
    SECTION_BEGIN();
    CASE("nb_dense", INV, nb_dense(0) == NULL);
    CASE("nb_dense", INV, nb_dense(-1) == NULL);
    CASE("nb_dense", INV, nb_dense(3, .input = -1) == NULL);
    CASE("nb_dense", INV, nb_dense(3, .activation = (nb_activation)99) == NULL);
    CASE("nb_dense", INV, nb_dense(3, .activation = (nb_activation)-1) == NULL);
    CASE("nb_dense", INV, nb_dense(3, .name = "") == NULL);
    CASE("nb_dense", INV, nb_dense(3, .name = "a name far longer than thirty-one bytes") == NULL);
    CASE("nb_activation_from_name", INV, nb_activation_from_name(NULL) == -1);
    CASE("nb_activation_from_name", INV, nb_activation_from_name("nope") == -1);
    CASE("nb_activation_name", INV, nb_activation_name((nb_activation)99) == NULL);
    CASE("nb_activation_name", INV, nb_activation_name((nb_activation)-1) == NULL);
    CASE("nb_sequential", INV, nb_sequential_(-1, NULL) == NULL);
    CASE("nb_sequential", INV, nb_sequential_(1, NULL) == NULL);
    CASE("nb_sequential", INV, nb_sequential_(2, (nb_layer *[]){nb_dense(2), NULL}) == NULL);
    CASE("nb_dense", INV, nb_sequential(nb_dense(0)) == NULL); /* the first error kept */
    CASE("nb_sequential", SHP, nb_sequential(nb_dense(4, .input = 2), nb_dense(3, .input = 5)) == NULL);
    CASE("nb_sequential", INV, nb_sequential(nb_dense(4, .name = "a"), nb_dense(3, .name = "a")) == NULL);
    nb_model *m = nb_sequential(nb_dense(3, .input = 4));
    nb_model *empty = nb_sequential_(0, NULL);
    nb_model *unbuilt = nb_sequential(nb_dense(3));
    nb_model *dead = nb_sequential(nb_dense(3));
    nb_model_free(dead);
    assert_non_null(m);
    assert_non_null(empty);
    nb_layer *l = nb_dense(2);
    CASE("nb_model_add", INV, nb_model_add(NULL, nb_dense(2)) == -1);
    CASE("nb_model_add", INV, nb_model_add(m, NULL) == -1);
    KEEP(nb_model_add(m, NULL) == -1);
    CASE("nb_model_add", STA, nb_model_add(dead, nb_dense(2)) == -1);
    assert_int_equal(nb_model_add(unbuilt, l), 0);
    CASE("nb_model_add", STA, nb_model_add(unbuilt, l) == -1);
    CASE("nb_model_add", STA, nb_model_add(empty, l) == -1);
    CASE("nb_layer_free", STA, (nb_layer_free(l), true));
    CASE("nb_model_free", STA, (nb_model_free(dead), true));
    CASE("nb_build", INV, nb_build(NULL, 4, 0) == -1);
    CASE("nb_build", STA, nb_build(empty, 4, 0) == -1);
    CASE("nb_build", INV, nb_build(unbuilt, 0, 0) == -1);
    CASE("nb_build", INV, nb_build(unbuilt, -4, 0) == -1);
    CASE("nb_build", SHP, nb_build(m, 5, 0) == -1);
    CASE("nb_build", STA, nb_build(dead, 4, 0) == -1);
    CASE("nb_model_set_dtype", INV, nb_model_set_dtype(NULL, NB_F64) == -1);
    CASE("nb_model_set_dtype", STA, nb_model_set_dtype(unbuilt, NB_F64) == -1);
    for (int i = 0; i < 3; i++)
        CASE("nb_model_set_dtype", DTY, nb_model_set_dtype(m, bad_dtypes[i]) == -1);
    CASE("nb_model_set_dtype", DTY, nb_model_set_dtype(m, NB_U8) == -1);
    /* Before compile (and before build). */
    nb_tensor *x = nb_ones(NB_F32, NB_SHAPE(5, 4)), *yy = nb_zeros(NB_F32, NB_SHAPE(5, 3));
    CASE("nb_fit", STA, nb_fit(m, (nb_dataset){.x = x, .y = yy}) == NULL);
    CASE("nb_evaluate", STA,
         nb_evaluate(m, (nb_dataset){.x = x, .y = yy}, .loss = &lossv, .metrics = &metricv,
                     .nmetrics = 1) == -1);
    CASE("nb_model_loss", STA, nb_model_loss(m, f23, f23) == NULL);
    CASE("nb_predict", STA, nb_predict(unbuilt, (nb_dataset){.x = x}) == NULL);
    CASE("nb_model_forward", STA, nb_model_forward(unbuilt, x) == NULL);
    CASE("nb_save_weights", STA, nb_save_weights(unbuilt, "/tmp/w.st") == -1);
    CASE("nb_save_checkpoint", STA, nb_save_checkpoint(unbuilt, "/tmp/w.st") == -1);
    CASE("nb_load_checkpoint", STA, nb_load_checkpoint(unbuilt, "/tmp/w.st") == -1);
    CASE("nb_load_weights", STA, nb_load_weights(unbuilt, "/tmp/w.st") == -1);
    /* compile */
    CASE("nb_compile", INV, nb_compile(NULL, nb_sgd(), NB_MEAN_SQUARED_ERROR, NB_NO_METRIC) == -1);
    CASE("nb_compile", INV, nb_compile(m, NULL, NB_MEAN_SQUARED_ERROR, NB_NO_METRIC) == -1);
    KEEP(nb_compile(m, NULL, NB_MEAN_SQUARED_ERROR, NB_NO_METRIC) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), (nb_loss)0, NB_NO_METRIC) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), (nb_loss)99, NB_NO_METRIC) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), NB_MEAN_SQUARED_ERROR, (nb_metric)99) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), NB_MEAN_SQUARED_ERROR, (nb_metric)-1) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), NB_MEAN_SQUARED_ERROR,
                                       .metrics = {NB_MAE, (nb_metric)42}) == -1);
    /* Custom losses and metrics; names; counts; a hole in a list. */
    const nb_custom_fn mine = {my_fn, NULL, "mine"};
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), NB_MEAN_SQUARED_ERROR, .custom_loss = mine) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), .custom_loss = {NULL, NULL, "mine"}) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), .custom_loss = {my_fn, NULL, "a b"}) == -1);
    const char *bad_names[] = {NULL, "", "a b", "x-y", "loss", "val_mine",
                               "a_name_of_forty_eight_characters_is_one_too_long"};
    for (int i = 0; i < 7; i++)
        CASE("nb_compile", INV, nb_compile(m, nb_sgd(), NB_MEAN_SQUARED_ERROR,
                                           .custom_metrics = {{my_fn, NULL, bad_names[i]}}) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), NB_MEAN_SQUARED_ERROR,
                                       .custom_metrics = {{NULL, NULL, "mine"}}) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), NB_MEAN_SQUARED_ERROR,
                                       .custom_metrics = {mine, mine}) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), NB_MEAN_SQUARED_ERROR, NB_MSE,
                                       .custom_metrics = {{my_fn, NULL, "mean_squared_error"}}) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), NB_MEAN_SQUARED_ERROR, NB_MAE,
                                       .metrics = {NB_MAE}) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), NB_MEAN_SQUARED_ERROR, NB_MAE,
                                       .metrics = {NB_MSE, NB_NO_METRIC, NB_ACCURACY}) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), NB_MEAN_SQUARED_ERROR,
                                       .custom_metrics = {mine, {0}, {my_fn, NULL, "two"}}) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), NB_MEAN_SQUARED_ERROR, NB_ACCURACY,
                                       .metrics = {NB_CATEGORICAL_ACCURACY, NB_TOP_K_ACCURACY,
                                                   NB_BINARY_ACCURACY, NB_MSE, NB_MAE},
                                       .custom_metrics = {mine, {my_fn, NULL, "two"},
                                                          {my_fn, NULL, "three"}}) == -1);
    /* Metrics whose targets the loss does not take; k. */
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), NB_MEAN_SQUARED_ERROR,
                                       NB_SPARSE_CATEGORICAL_ACCURACY) == -1);
    const nb_metric same_shape[] = {NB_CATEGORICAL_ACCURACY, NB_BINARY_ACCURACY, NB_MSE, NB_MAE};
    for (int i = 0; i < 4; i++)
        CASE("nb_compile", INV, nb_compile(m, nb_sgd(), NB_SPARSE_CATEGORICAL_CROSSENTROPY,
                                           same_shape[i]) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), NB_CATEGORICAL_CROSSENTROPY, NB_TOP_K_ACCURACY,
                                       .top_k = -2) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY,
                                       .top_k = 3) == -1);
    CASE("nb_compile", STA, nb_compile(empty, nb_sgd(), NB_MEAN_SQUARED_ERROR, NB_NO_METRIC) == -1);
    CASE("nb_compile", STA, nb_compile(dead, nb_sgd(), NB_MEAN_SQUARED_ERROR, NB_NO_METRIC) == -1);
    assert_int_equal(nb_compile(m, nb_sgd(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY), 0);
    CASE("nb_compile", STA, nb_compile(unbuilt, nb_model_optimizer(m), NB_MEAN_SQUARED_ERROR,
                                       NB_NO_METRIC) == -1);
    /* Compiled: data that does not fit. */
    nb_tensor *x5 = nb_ones(NB_F32, NB_SHAPE(5, 5)), *x64 = nb_ones(NB_F64, NB_SHAPE(5, 4));
    nb_tensor *ybad = nb_full(NB_F32, NB_SHAPE(5, 3), 2.0);
    CASE("nb_fit", INV, nb_fit(m, (nb_dataset){.x = NULL, .y = yy}) == NULL);
    KEEP(nb_fit(NULL, (nb_dataset){.x = x, .y = yy}) == NULL);
    CASE("nb_fit", INV, nb_fit(NULL, (nb_dataset){.x = x, .y = yy}) == NULL);
    CASE("nb_fit", INV, nb_fit(m, (nb_dataset){.x = x, .y = NULL}) == NULL);
    CASE("nb_fit", SHP, nb_fit(m, (nb_dataset){.x = x5, .y = yy}) == NULL);
    CASE("nb_fit", DTY, nb_fit(m, (nb_dataset){.x = x64, .y = yy}) == NULL);
    CASE("nb_fit", SHP, nb_fit(m, (nb_dataset){.x = x, .y = f23}) == NULL);
    CASE("nb_fit", INV, nb_fit(m, (nb_dataset){.x = x, .y = ybad}) == NULL); /* not in [0, 1] */
    CASE("nb_fit", INV, nb_fit(m, (nb_dataset){.x = x, .y = yy}, .epochs = -1) == NULL);
    CASE("nb_fit", INV, nb_fit(m, (nb_dataset){.x = x, .y = yy}, .batch_size = -3) == NULL);
    CASE("nb_fit", INV, nb_fit(m, (nb_dataset){.x = x, .y = yy}, .verbose = 3) == NULL);
    CASE("nb_fit", INV, nb_fit(m, (nb_dataset){.x = x, .y = yy}, .verbose = -2) == NULL);
    CASE("nb_fit", STA, nb_fit(dead, (nb_dataset){.x = x, .y = yy}) == NULL);
    CASE("nb_evaluate", INV,
         nb_evaluate(NULL, (nb_dataset){.x = x, .y = yy}, .loss = &lossv, .metrics = &metricv,
                     .nmetrics = 1) == -1);
    CASE("nb_evaluate", SHP,
         nb_evaluate(m, (nb_dataset){.x = x5, .y = yy}, .loss = &lossv, .metrics = &metricv,
                     .nmetrics = 1) == -1);
    CASE("nb_evaluate", INV,
         nb_evaluate(m, (nb_dataset){.x = x, .y = yy}, .batch_size = -1, .loss = &lossv,
                     .metrics = &metricv, .nmetrics = 1) == -1);
    CASE("nb_predict", INV, nb_predict(NULL, (nb_dataset){.x = x}) == NULL);
    CASE("nb_predict", INV, nb_predict(m, (nb_dataset){.x = NULL}) == NULL);
    CASE("nb_predict", DTY, nb_predict(m, (nb_dataset){.x = x64}) == NULL);
    CASE("nb_predict", SHP, nb_predict(m, (nb_dataset){.x = x5}) == NULL);
    /* u8 x and its scale; y stays in the model's dtype. */
    nb_tensor *u4 = nb_ones(NB_U8, NB_SHAPE(5, 4)), *u5 = nb_ones(NB_U8, NB_SHAPE(5, 5));
    nb_tensor *yu = nb_zeros(NB_U8, NB_SHAPE(5, 3));
    const double bad_scales[] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; i++) {
        CASE("nb_fit", INV, nb_fit(m, (nb_dataset){u4, yy, bad_scales[i]}) == NULL);
        CASE("nb_evaluate", INV,
             nb_evaluate(m, (nb_dataset){u4, yy, bad_scales[i]}, .loss = &lossv,
                         .metrics = &metricv, .nmetrics = 1) == -1);
        CASE("nb_predict", INV, nb_predict(m, (nb_dataset){u4, NULL, bad_scales[i]}) == NULL);
    }
    /* A scale for float x (it converts u8 only). */
    CASE("nb_fit", INV, nb_fit(m, (nb_dataset){x, yy, 1 / 255.0}) == NULL);
    CASE("nb_fit", INV, nb_fit(m, (nb_dataset){.x = x, .y = yy}, .validation = {x, yy, 2})
                            == NULL);
    CASE("nb_evaluate", INV,
         nb_evaluate(m, (nb_dataset){x, yy, 0.5}, .loss = &lossv, .metrics = &metricv,
                     .nmetrics = 1) == -1);
    CASE("nb_predict", INV, nb_predict(m, (nb_dataset){x, NULL, -1}) == NULL);
    CASE("nb_fit", SHP, nb_fit(m, (nb_dataset){u5, yy, 1 / 255.0}) == NULL);
    CASE("nb_fit", DTY, nb_fit(m, (nb_dataset){u4, yu, 1 / 255.0}) == NULL);
    CASE("nb_fit", DTY, nb_fit(m, (nb_dataset){u4, yy, 1}, .validation = {u4, yu, 1}) == NULL);
    CASE("nb_evaluate", SHP,
         nb_evaluate(m, (nb_dataset){u5, yy, 1}, .loss = &lossv, .metrics = &metricv,
                     .nmetrics = 1) == -1);
    CASE("nb_evaluate", DTY,
         nb_evaluate(m, (nb_dataset){u4, yu, 1}, .loss = &lossv, .metrics = &metricv,
                     .nmetrics = 1) == -1);
    CASE("nb_predict", SHP, nb_predict(m, (nb_dataset){.x = u5}) == NULL);
    CASE("nb_predict", INV, nb_predict(m, (nb_dataset){.x = u4}, .batch_size = -2) == NULL);
    CASE("nb_model_forward", DTY, nb_model_forward(m, u4) == NULL);
    nb_free(u4);
    nb_free(u5);
    nb_free(yu);
    CASE("nb_model_forward", INV, nb_model_forward(NULL, x) == NULL);
    CASE("nb_model_forward", INV, nb_model_forward(m, NULL) == NULL);
    KEEP(nb_model_forward(m, NULL) == NULL);
    CASE("nb_model_forward", SHP, nb_model_forward(m, x5) == NULL);
    CASE("nb_model_forward", SHP, nb_model_forward(m, f4) == NULL);
    CASE("nb_model_forward", DTY, nb_model_forward(m, x64) == NULL);
    for (int b = 0; b < 4; b++) {
        CASE("nb_model_forward", STA, nb_model_forward(m, bad_tensors()[b]) == NULL);
        CASE("nb_model_loss", STA, nb_model_loss(m, bad_tensors()[b], f23) == NULL);
        CASE("nb_model_loss", STA, nb_model_loss(m, f23, bad_tensors()[b]) == NULL);
    }
    CASE("nb_model_loss", INV, nb_model_loss(NULL, f23, f23) == NULL);
    CASE("nb_model_loss", INV, nb_model_loss(m, NULL, f23) == NULL);
    CASE("nb_model_loss", INV, nb_model_loss(m, f23, NULL) == NULL);
    nb_tensor *const *ps;
    CASE("nb_model_params", INV, nb_model_params(NULL, &ps) == -1);
    CASE("nb_model_params", INV, nb_model_params(m, NULL) == -1);
    CASE("nb_model_params", STA, nb_model_params(dead, &ps) == -1);
    CASE("nb_model_optimizer", INV, nb_model_optimizer(NULL) == NULL);
    CASE("nb_model_optimizer", STA, nb_model_optimizer(dead) == NULL);
    CASE("nb_count_params", INV, nb_count_params(NULL) == 0);
    CASE("nb_count_params", STA, nb_count_params(dead) == 0);
    CASE("nb_summary", INV, nb_summary(NULL, stdout) == -1);
    CASE("nb_summary", INV, nb_summary(m, NULL) == -1);
    CASE("nb_summary", STA, nb_summary(dead, stdout) == -1);
    CASE("nb_save_weights", INV, nb_save_weights(NULL, "/tmp/w.st") == -1);
    CASE("nb_save_weights", INV, nb_save_weights(m, NULL) == -1);
    CASE("nb_save_weights", IOE, nb_save_weights(m, "/nonexistent-dir/w.st") == -1);
    CASE("nb_load_weights", INV, nb_load_weights(NULL, "/tmp/w.st") == -1);
    CASE("nb_load_weights", INV, nb_load_weights(m, NULL) == -1);
    CASE("nb_load_weights", IOE, nb_load_weights(m, "/nonexistent-dir/w.st") == -1);
    /* A checkpoint makes the optimizer's state if no step has: made here
     * first, so that the failures below leave the count of live tensors. */
    char ckpt[] = "/tmp/nb_bad_args_XXXXXX";
    int ckfd = mkstemp(ckpt);
    assert_true(ckfd >= 0);
    close(ckfd);
    assert_int_equal(nb_save_checkpoint(m, ckpt), 0);
    CASE("nb_save_checkpoint", INV, nb_save_checkpoint(NULL, ckpt) == -1);
    KEEP(nb_save_checkpoint(NULL, ckpt) == -1);
    CASE("nb_save_checkpoint", INV, nb_save_checkpoint(m, NULL) == -1);
    CASE("nb_save_checkpoint", STA, nb_save_checkpoint(dead, ckpt) == -1);
    CASE("nb_save_checkpoint", IOE, nb_save_checkpoint(m, "/nonexistent-dir/c.st") == -1);
    CASE("nb_load_checkpoint", INV, nb_load_checkpoint(NULL, ckpt) == -1);
    KEEP(nb_load_checkpoint(NULL, ckpt) == -1);
    CASE("nb_load_checkpoint", INV, nb_load_checkpoint(m, NULL) == -1);
    CASE("nb_load_checkpoint", STA, nb_load_checkpoint(dead, ckpt) == -1);
    CASE("nb_load_checkpoint", IOE, nb_load_checkpoint(m, "/nonexistent-dir/c.st") == -1);
    assert_int_equal(nb_save_weights(m, ckpt), 0);
    CASE("nb_load_checkpoint", FMT, nb_load_checkpoint(m, ckpt) == -1); /* weights only */
    unlink(ckpt);
    nb_free(x);
    nb_free(yy);
    nb_free(x5);
    nb_free(x64);
    nb_free(ybad);
    nb_model_free(m);
    nb_model_free(empty);
    nb_model_free(unbuilt);
    /* Optimizers. */
    CASE("nb_sgd", INV, nb_sgd(.lr = -1) == NULL);
    CASE("nb_sgd", INV, nb_sgd(.lr = NAN) == NULL);
    CASE("nb_sgd", INV, nb_sgd(.momentum = 1) == NULL);
    CASE("nb_sgd", INV, nb_sgd(.betas = {0.5, 0.5}) == NULL); /* not SGD's */
    CASE("nb_adam", INV, nb_adam(.eps = NB_ZERO) == NULL);
    CASE("nb_adam", INV, nb_adam(.betas = {1.5, 0.9}) == NULL);
    CASE("nb_adamw", INV, nb_adamw(.weight_decay = -1) == NULL);
    CASE("nb_rmsprop", INV, nb_rmsprop(.rho = 2) == NULL);
    CASE("nb_adagrad", INV, nb_adagrad(.initial_accumulator = -1) == NULL);
    CASE("nb_adam", INV, nb_adam(.schedule = {NB_STEP_DECAY, 0, 0.5}) == NULL);
    CASE("nb_adam", INV, nb_adam(.schedule = {(nb_schedule_kind)9, 1, 1}) == NULL);
    nb_optimizer *opt = nb_sgd();
    nb_tensor *w = nb_param(nb_ones(NB_F32, NB_SHAPE(2)));
    CASE("nb_optimizer_step", INV, nb_optimizer_step(NULL, 1, &w) == -1);
    CASE("nb_optimizer_step", INV, nb_optimizer_step(opt, -1, &w) == -1);
    CASE("nb_optimizer_step", INV, nb_optimizer_step(opt, 1, NULL) == -1);
    CASE("nb_optimizer_step", INV, nb_optimizer_step(opt, 1, (nb_tensor *[]){NULL}) == -1);
    CASE("nb_optimizer_steps", INV, nb_optimizer_steps(NULL) == -1);
    CASE("nb_optimizer_lr", INV, isnan(nb_optimizer_lr(NULL)));
    CASE("nb_optimizer_name", INV, nb_optimizer_name(NULL) == NULL);
    nb_optim_opts oo;
    nb_tensor *const *st;
    CASE("nb_optimizer_opts", INV, nb_optimizer_opts(NULL, &oo) == -1);
    CASE("nb_optimizer_opts", INV, nb_optimizer_opts(opt, NULL) == -1);
    CASE("nb_optimizer_state", INV, nb_optimizer_state(NULL, 1, &w, &st) == -1);
    CASE("nb_optimizer_state", INV, nb_optimizer_state(opt, 1, &w, NULL) == -1);
    CASE("nb_optimizer_state", INV, nb_optimizer_state(opt, -1, &w, &st) == -1);
    CASE("nb_optimizer_state", INV, nb_optimizer_state(opt, 1, NULL, &st) == -1);
    CASE("nb_optimizer_state", INV, nb_optimizer_state(opt, 1, (nb_tensor *[]){NULL}, &st) == -1);
    CASE("nb_optimizer_set_steps", INV, nb_optimizer_set_steps(NULL, 1, 0) == -1);
    CASE("nb_optimizer_set_steps", INV, nb_optimizer_set_steps(opt, 0, -1) == -1);
    CASE("nb_optimizer_set_steps", STA, nb_optimizer_set_steps(opt, 3, 0) == -1); /* no state */
    CASE("nb_schedule_lr", INV, isnan(nb_schedule_lr((nb_schedule){NB_COSINE_DECAY, 0, 0}, 1, 0)));
    CASE("nb_schedule_lr", INV, isnan(nb_schedule_lr((nb_schedule){NB_CONSTANT, 0, 0}, NAN, 0)));
    CASE("nb_schedule_lr", INV, isnan(nb_schedule_lr((nb_schedule){NB_CONSTANT, 0, 0}, 1, -1)));
    CASE("nb_clip_grad_norm", INV, nb_clip_grad_norm(-1, &w, 1) == -1);
    CASE("nb_clip_grad_norm", INV, nb_clip_grad_norm(1, NULL, 1) == -1);
    CASE("nb_clip_grad_norm", INV, nb_clip_grad_norm(1, &w, 0) == -1);
    CASE("nb_clip_grad_norm", INV, nb_clip_grad_norm(1, &w, NAN) == -1);
    CASE("nb_clip_grad_norm", INV, nb_clip_grad_norm(2, (nb_tensor *[]){w, w}, 1) == -1);
    CASE("nb_clip_grad_value", INV, nb_clip_grad_value(-1, &w, 1) == -1);
    CASE("nb_clip_grad_value", INV, nb_clip_grad_value(1, (nb_tensor *[]){NULL}, 1) == -1);
    CASE("nb_clip_grad_value", INV, nb_clip_grad_value(1, &w, -1) == -1);
    nb_optimizer_free(opt);
    nb_free(w);
    SECTION_END();
}

/* ---- gradient checks: their error channel is the report ---- */

/* The check failed to run: false or -1, a report naming the function, or
 * (report NULL, or nb_check_heatmap / nb_check_graph) nb_last_error. */
static nb_tensor *fsq(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_sum(nb_square(x[0]));
}

static void report_case(const char *fn, bool failed, const char *msg, int line)
{
    char printed[256];
    long n = restore(printed, sizeof printed);
    tried++;
    size_t k = strlen(fn);
    if (failed && strncmp(msg, fn, k) == 0 && msg[k] == ':' && n == 0 &&
        nb_live_tensors() == live0) {
        passed++;
        return;
    }
    section_failed++;
    print_error("line %d: %s: failed %d, report \"%s\", %ld bytes printed\n", line, fn, failed,
                msg, n);
}
#define REPORT(fn, call, rep)                                                  \
    do {                                                                       \
        begin();                                                               \
        memset(&(rep), 0, sizeof(rep));                                        \
        bool failed_ = !(call);                                                \
        report_case((fn), failed_ && (rep).message[0], (rep).message, __LINE__);  \
    } while (0)

static void test_checks(void **state)
{
    (void)state;
    SECTION_BEGIN();
    nb_check_report r;
    nb_tensor *x = nb_set_requires_grad(nb_ones(NB_F64, NB_SHAPE(3)), true);
    nb_tensor *x32 = nb_set_requires_grad(nb_ones(NB_F32, NB_SHAPE(3)), true);
    REPORT("nb_gradcheck", nb_gradcheck(NULL, NULL, 1, &x, NULL, &r), r);
    REPORT("nb_gradcheck", nb_gradcheck(fsq, NULL, 1, NULL, NULL, &r), r);
    REPORT("nb_gradcheck", nb_gradcheck(fsq, NULL, 0, &x, NULL, &r), r);
    REPORT("nb_gradcheck", nb_gradcheck(fsq, NULL, 99, &x, NULL, &r), r);
    REPORT("nb_gradcheck", nb_gradcheck(fsq, NULL, 1, (nb_tensor *[]){NULL}, NULL, &r), r);
    REPORT("nb_gradcheck", nb_gradcheck(fsq, NULL, 1, &x32, NULL, &r), r);
    for (int b = 0; b < 4; b++) { /* a stale input would be perturbed in another's memory */
        REPORT("nb_gradcheck", nb_gradcheck(fsq, NULL, 1, &bad_tensors()[b], NULL, &r), r);
        if (!strstr(r.message, "graph generation") && !strstr(r.message, "freed (nb_free)"))
            fail_msg("nb_gradcheck of a stale input: \"%s\"", r.message);
    }
    REPORT("nb_gradgradcheck", nb_gradgradcheck(NULL, NULL, 1, &x, NULL, &r), r);
    REPORT("nb_gradgradcheck", nb_gradgradcheck(fsq, NULL, 0, &x, NULL, &r), r);
    REPORT("nb_gradcheck_op", nb_gradcheck_op(NULL, NULL, NB_SHAPES({3}), &r), r);
    REPORT("nb_gradcheck_op", nb_gradcheck_op(nb_op_find("add"), NULL, NB_SHAPES({3}), &r), r);
    REPORT("nb_check_example", nb_check_example(NULL, NULL, 1, NULL, &r), r);
    REPORT("nb_check_example", nb_check_example(nb_op_find("exp"), NULL, 1, NULL, &r), r);
    nb_mutation_report mr;
    REPORT("nb_gradcheck_mutations", nb_gradcheck_mutations(NULL, NULL, &mr), mr);
    nb_contract_report cr;
    REPORT("nb_check_contract", nb_check_contract(NULL, NULL, &cr), cr);
    CASE("nb_gradcheck", INV, !nb_gradcheck(fsq, NULL, 1, &x, NULL, NULL));
    CASE("nb_check_heatmap", INV, nb_check_heatmap(NULL, 0, "/tmp/h.svg") == -1);
    memset(&r, 0, sizeof r);
    CASE("nb_check_heatmap", INV, nb_check_heatmap(&r, 0, "/tmp/h.svg") == -1); /* none kept */
    CASE("nb_check_heatmap", INV, nb_check_heatmap(&r, -1, "/tmp/h.svg") == -1);
    CASE("nb_check_graph", INV, nb_check_graph(NULL, NULL, 1, &x, NULL, "/tmp/g.dot") == -1);
    CASE("nb_check_graph", INV, nb_check_graph(fsq, NULL, 1, &x, NULL, NULL) == -1);
    nb_free(x);
    nb_free(x32);
    nb_clear_error();
    SECTION_END();
}

static void test_summary(void **state)
{
    (void)state;
    printf("# bad arguments (nb_apply, autograd, memory and threads, pictures, files, models, checks, fused functions"
           "): %d cases tried, %d gave the documented error\n", tried, passed);
    assert_int_equal(passed, tried);
    assert_true(tried >= 300);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply),   cmocka_unit_test(test_autograd),
        cmocka_unit_test(test_memory),  cmocka_unit_test(test_dot),
        cmocka_unit_test(test_io),      cmocka_unit_test(test_nn),
        cmocka_unit_test(test_checks),  cmocka_unit_test(test_fused),
        cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
