/* The smallest nabla program (README: "Using it"): d(x*x)/dx at x = 3. */
#include <nabla/nabla.h>
#include <stdio.h>

int main(void)
{
    nb_tensor *x = nb_param(nb_scalar(NB_F64, 3)); /* a leaf that wants its gradient */
    nb_graph *g = nb_graph_new();                  /* x * x is recorded here */
    if (nb_backward(nb_mul(x, x)) != 0) {
        fprintf(stderr, "hello: %s\n", nb_last_error());
        return 1;
    }
    printf("nabla %s: d(x*x)/dx at 3 = %g\n", nb_version(), nb_item(nb_grad_of(x)));
    nb_graph_free(g);
    nb_free(x);
    return 0;
}
