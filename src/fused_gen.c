/* nabla-fusegen OUT.c: the compiled fused programs of the built-in
 * optimizers (src/fused_compile.c), run by the build.
 *
 * It makes every optimizer and option pattern that changes the update's
 * ops (the algorithm, momentum, Nesterov, weight decay, clipnorm,
 * clipvalue), takes one step of each on a two-element parameter in f32
 * and in f64, and writes each program traced, once per key, as a C loop,
 * then the table nb__compiled_programs. Option values do not matter: the
 * constants are read when the program runs. */
#include "fused_internal.h"

#include <stdio.h>
#include <stdlib.h>

static FILE *out;
static int count, failed;
static char *keys[1024];

static void emit(const program *p, const char *name)
{
    char key[1 << 14];
    if (nb__program_key(p, key, sizeof key) < 0) {
        fprintf(stderr, "nabla-fusegen: '%s' (%s) has an op with no element expression; it "
                        "stays interpreted\n", name, nb_dtype_name(p->dtype));
        return;
    }
    for (int i = 0; i < count; i++)
        if (strcmp(keys[i], key) == 0)
            return;
    if (count == (int)(sizeof keys / sizeof *keys) || !(keys[count] = malloc(strlen(key) + 1))) {
        failed = 1;
        return;
    }
    strcpy(keys[count], key);
    char fname[32];
    snprintf(fname, sizeof fname, "k%d", count);
    fprintf(out, "/* %s, %s */\n", name, nb_dtype_name(p->dtype));
    if (nb__program_emit(p, fname, out) < 0)
        failed = 1;
    count++;
}

/* One step of opt on a parameter of dtype dt; the optimizer is freed. */
static int step(nb_optimizer *opt, nb_dtype dt)
{
    if (!opt)
        return -1;
    nb_graph *g = nb_graph_new();
    nb_tensor *p = nb_param(nb_full(dt, 1, (const int64_t[]){2}, 0.5));
    int rc = -1;
    if (g && p) {
        nb_tensor *loss = nb_sum(nb_square(p));
        rc = loss && nb_backward(loss) == 0 && nb_optimizer_step(opt, 1, &p) >= 0 ? 0 : -1;
    }
    nb_free(p);
    nb_graph_free(g);
    nb_optimizer_free(opt);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: nabla-fusegen OUT.c\n");
        return 2;
    }
    if (!(out = fopen(argv[1], "w"))) {
        perror(argv[1]);
        return 1;
    }
    fprintf(out, "/* Written by nabla-fusegen (src/fused_gen.c) at build time: the built-in\n"
                 " * optimizers' fused updates as loops (src/fused_compile.c). */\n"
                 "#include \"fused_internal.h\"\n\n#include <math.h>\n\n"
                 "#ifdef NB_KERNEL_AVX512\n#define AVX512(k) k\n#else\n#define AVX512(k) NULL\n#endif\n\n");
    nb__traced_hook = emit;
    for (int dt = 0; dt < 2; dt++) {
        nb_dtype d = dt ? NB_F64 : NB_F32;
        for (int c = 0; c < 8; c++) { /* weight decay, clipnorm, clipvalue */
            double wd = c & 1 ? 0.01 : 0, cn = c & 2 ? 1.0 : 0, cv = c & 4 ? 1.0 : 0;
#define OPTS .weight_decay = wd, .clipnorm = cn, .clipvalue = cv
            if (step(nb_sgd(OPTS), d) || step(nb_sgd(.momentum = 0.9, OPTS), d) ||
                step(nb_sgd(.momentum = 0.9, .nesterov = true, OPTS), d) ||
                step(nb_adam(OPTS), d) || step(nb_rmsprop(OPTS), d) ||
                step(nb_rmsprop(.momentum = 0.9, OPTS), d) || step(nb_adagrad(OPTS), d)) {
                fprintf(stderr, "nabla-fusegen: %s\n", nb_last_error());
                failed = 1;
            }
#undef OPTS
        }
    }
    nb__traced_hook = NULL;
    fprintf(out, "const nb_compiled nb__compiled_programs[] = {\n");
    for (int i = 0; i < count; i++) {
        fprintf(out, "    {\"%s\", k%d, AVX512(k%d_512)},\n", keys[i], i, i);
        free(keys[i]);
    }
    fprintf(out, "    {NULL, NULL, NULL},\n};\n");
    if (fclose(out) != 0 || failed) {
        fprintf(stderr, "nabla-fusegen: writing %s failed\n", argv[1]);
        return 1;
    }
    return 0;
}
