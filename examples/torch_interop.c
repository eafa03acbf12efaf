/* nabla's side of tests/data/torch_interop.py: weights to PyTorch and back.
 *
 *   torch_interop save DIR [data-dir=/usr/share/datasets/fashion-mnist]
 *       trains the classic model (one epoch) and a small conv net (one epoch
 *       on 6000 images) on Fashion-MNIST, then writes in DIR, for each
 *       (mlp, cnn): <net>_torch.safetensors (the PyTorch layout),
 *       <net>_keras.safetensors (nabla's own) and <net>_pred.safetensors
 *       ("x": 1000 test images as floats, channels-last for the conv net;
 *       "pred": the model's outputs for them in f32, "pred64" in f64).
 *   torch_interop check DIR
 *       loads <net>_back.safetensors (a state_dict PyTorch saved) into fresh
 *       models with .layout = NB_LAYOUT_PYTORCH and compares their outputs
 *       for "x" with PyTorch's ("pred" and "pred64" of
 *       <net>_back_pred.safetensors): prints the largest differences; exit
 *       status 1 above 1e-6 in f64 or 1e-5 in f32.
 * f32 outputs differ by about 1e-6 whatever the layout, as the two
 * libraries sum the 784 products of a unit in other orders; in f64 the
 * same weights give outputs equal to about 1e-15. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla/nabla.h"

static nb_model *mlp(void)
{
    nb_model *m = nb_sequential(nb_dense(64, .activation = NB_RELU, .input = 784),
                                nb_dense(32, .activation = NB_RELU),
                                nb_dense(10, .activation = NB_SOFTMAX));
    nb_compile(m, nb_adam(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY);
    return m;
}

/* torch: Conv2d(1, 8, 3), ReLU, MaxPool2d(2), Flatten, Linear(1352, 10), Softmax(1) */
static nb_model *cnn(void)
{
    nb_model *m = nb_sequential(nb_input(28, 28, 1), nb_conv2d(8, {3}, .activation = NB_RELU),
                                nb_max_pooling2d(), nb_flatten(),
                                nb_dense(10, .activation = NB_SOFTMAX));
    nb_compile(m, nb_adam(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY);
    return m;
}

static const char *path(const char *dir, const char *net, const char *what)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s_%s.safetensors", dir, net, what);
    return buf[k];
}

/* The first n rows of t (contiguous), reshaped to (n, shape...). */
static nb_tensor *rows(const nb_tensor *t, int64_t n, int ndim, const int64_t *shape)
{
    int64_t s[NB_MAX_DIMS] = {n};
    memcpy(s + 1, shape, (size_t)ndim * sizeof *shape);
    return nb_from_array(nb_dtype_of(t), ndim + 1, s, nb_data(t));
}

/* An f64 copy of t. */
static nb_tensor *f64(const nb_tensor *t)
{
    nb_tensor *c = nb_zeros(NB_F64, nb_ndim(t), nb_shape(t));
    for (int64_t i = 0; c && i < nb_numel(t); i++)
        ((double *)nb_data(c))[i] = ((const float *)nb_data(t))[i];
    return c;
}

/* The largest |a - b| of two tensors of one dtype and shape. */
static double worst(const nb_tensor *a, const nb_tensor *b)
{
    double w = 0;
    for (int64_t i = 0; i < nb_numel(a); i++) {
        double u = nb_dtype_of(a) == NB_F64 ? ((const double *)nb_data(a))[i]
                                            : ((const float *)nb_data(a))[i];
        double v = nb_dtype_of(b) == NB_F64 ? ((const double *)nb_data(b))[i]
                                            : ((const float *)nb_data(b))[i];
        w = fmax(w, fabs(u - v));
    }
    return w;
}

static int save(const char *dir, const char *data)
{
    nb_tensor *xtr, *ytr, *xte, *yte;
    if (nb_load_mnist(data, &xtr, &ytr, &xte, &yte))
        return -1;
    nb_tensor *xs = nb_scale_images(xte);
    const char *net[2] = {"mlp", "cnn"};
    int rc = xs ? 0 : -1;
    for (int k = 0; k < 2 && !rc; k++) {
        nb_model *m = k ? cnn() : mlp(), *m64 = k ? cnn() : mlp(); /* m64: f64 outputs */
        int64_t n = k ? 6000 : 60000, img[3] = {28, 28, 1};
        nb_tensor *x = rows(xtr, n, k ? 3 : 1, k ? img : (int64_t[]){784});
        nb_tensor *y = rows(ytr, n, 1, (int64_t[]){10});
        nb_tensor *xt = rows(xs, 1000, k ? 3 : 1, k ? img : (int64_t[]){784});
        const nb_history *h = nb_fit(m, (nb_dataset){x, y, .scale = 1 / 255.0}, .seed = 1);
        nb_tensor *pred = nb_predict(m, (nb_dataset){.x = xt}, .batch_size = 100);
        nb_tensor *x64 = f64(xt), *p64 = NULL;
        nb_set_name(xt, "x");
        nb_set_name(pred, "pred");
        rc = !h || !pred ||
                     nb_save_weights(m, path(dir, net[k], "torch"), .layout = NB_LAYOUT_PYTORCH) ||
                     nb_save_weights(m, path(dir, net[k], "keras")) ||
                     nb_model_set_dtype(m64, NB_F64) ||
                     nb_load_weights(m64, path(dir, net[k], "keras")) ||
                     !(p64 = nb_set_name(nb_predict(m64, (nb_dataset){.x = x64}, .batch_size = 100), "pred64")) ||
                     nb_save_safetensors(path(dir, net[k], "pred"), 3,
                                         (nb_tensor *[]){xt, pred, p64})
                 ? -1
                 : 0;
        nb_free(x64);
        nb_free(p64);
        if (!rc)
            printf("%s: trained, loss %.4f; wrote %s\n", net[k], h->loss[0],
                   path(dir, net[k], "torch"));
        nb_free(pred);
        nb_free(xt);
        nb_free(x);
        nb_free(y);
        nb_model_free(m);
    }
    nb_free(xs);
    nb_free(xtr);
    nb_free(ytr);
    nb_free(xte);
    nb_free(yte);
    return rc;
}

static int check(const char *dir)
{
    const char *net[2] = {"mlp", "cnn"};
    int rc = 0;
    for (int k = 0; k < 2 && rc >= 0; k++) {
        nb_model *m = k ? cnn() : mlp(), *m64 = k ? cnn() : mlp();
        nb_tensor *x = nb_set_name(k ? nb_zeros(NB_F32, NB_SHAPE(1000, 28, 28, 1))
                                     : nb_zeros(NB_F32, NB_SHAPE(1000, 784)), "x");
        nb_tensor *want = nb_set_name(nb_zeros(NB_F32, NB_SHAPE(1000, 10)), "pred");
        nb_tensor *want64 = nb_set_name(nb_zeros(NB_F64, NB_SHAPE(1000, 10)), "pred64");
        nb_tensor *got = NULL, *got64 = NULL, *x64 = NULL;
        if (nb_load_weights(m, path(dir, net[k], "back"), .layout = NB_LAYOUT_PYTORCH) ||
            nb_load_safetensors(path(dir, net[k], "pred"), 1, &x, .partial = true) ||
            nb_load_safetensors(path(dir, net[k], "back_pred"), 2, (nb_tensor *[]){want, want64}) ||
            !(got = nb_predict(m, (nb_dataset){.x = x}, .batch_size = 100)) || nb_model_set_dtype(m64, NB_F64) ||
            nb_load_weights(m64, path(dir, net[k], "back"), .layout = NB_LAYOUT_PYTORCH) ||
            !(x64 = f64(x)) || !(got64 = nb_predict(m64, (nb_dataset){.x = x64}, .batch_size = 100))) {
            rc = -1;
        } else {
            double w32 = worst(got, want), w64 = worst(got64, want64);
            printf("%s: nabla, loading PyTorch's trained state_dict, against PyTorch: "
                   "max |difference| %.3g in f64, %.3g in f32\n", net[k], w64, w32);
            if (!(w64 <= 1e-6 && w32 <= 1e-5))
                rc = 1;
        }
        nb_free(got64);
        nb_free(x64);
        nb_free(want64);
        nb_model_free(m64);
        nb_free(got);
        nb_free(x);
        nb_free(want);
        nb_model_free(m);
    }
    return rc;
}

int main(int argc, char **argv)
{
    int rc = -1;
    if (argc >= 3 && !strcmp(argv[1], "save"))
        rc = save(argv[2], argc > 3 ? argv[3] : "/usr/share/datasets/fashion-mnist");
    else if (argc == 3 && !strcmp(argv[1], "check"))
        rc = check(argv[2]);
    else {
        fprintf(stderr, "usage: %s save DIR [data-dir] | check DIR\n", argv[0]);
        return 2;
    }
    if (rc < 0)
        fprintf(stderr, "%s\n", nb_last_error());
    return rc ? 1 : 0;
}
