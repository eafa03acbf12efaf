/* Keras's EarlyStopping and ModelCheckpoint as nb_callbacks (nn.h). */
#include "nn_internal.h"

#include <math.h>

/* The model's weights into es->saved (made on first use), or back. */
static int copy_weights(nb_model *m, nb_early_stopping *es, bool back)
{
    if (!es->saved) {
        es->saved = nb_mem_alloc((size_t)(m->nweights ? m->nweights : 1) * sizeof *es->saved);
        if (!es->saved)
            return nn_blame("nb_early_stopping");
        for (es->nsaved = 0; es->nsaved < m->nweights; es->nsaved++) {
            nb_tensor *w = m->weights[es->nsaved];
            if (!(es->saved[es->nsaved] = nn_zeros("nb_early_stopping", nb_dtype_of(w),
                                                   nb_ndim(w), nb_shape(w))))
                return -1;
        }
    }
    if (es->nsaved != m->nweights)
        return nb_set_error_code(NB_ERR_STATE, "nb_early_stopping: its saved weights are "
                                 "another model's (one nb_early_stopping per fit)");
    for (int i = 0; i < m->nweights; i++) {
        nb_tensor *w = m->weights[i], *c = es->saved[i];
        size_t bytes = (size_t)nb_numel(w) * nb_dtype_size(nb_dtype_of(w));
        memcpy(nb_data(back ? w : c), nb_data(back ? c : w), bytes);
        nb_bump_version(back ? w : c);
    }
    return 0;
}

static int on_epoch(nb_model *m, const nb_logs *logs, void *ctx)
{
    nb_early_stopping *es = ctx;
    double v = es->monitor_loss ? logs->loss : logs->val_loss;
    if (isnan(v))
        return nb_set_error("nb_early_stopping: %s is NaN at epoch %d%s",
                            es->monitor_loss ? "the loss" : "val_loss", logs->epoch + 1,
                            es->monitor_loss ? "" : " (give nb_fit validation data, or "
                                                    "monitor the loss)");
    /* The fit's first epoch sets the mark (a .resume fit's is not 0). */
    if (logs->epoch == m->hist.initial_epoch || v < es->best - es->min_delta) {
        es->best = v;
        es->best_epoch = logs->epoch;
        es->wait = 0;
        return es->restore_best_weights ? copy_weights(m, es, false) : 0;
    }
    if (++es->wait <= es->patience)
        return 0;
    es->stopped = true;
    if (es->restore_best_weights && copy_weights(m, es, true))
        return -1;
    return 1;
}

nb_callback nb_early_stopping_callback(nb_early_stopping *es)
{
    return (nb_callback){.on_epoch = es ? on_epoch : NULL, .ctx = es};
}

void nb_early_stopping_free(nb_early_stopping *es)
{
    if (!es)
        return;
    for (int i = 0; i < es->nsaved; i++)
        nb_free(es->saved[i]);
    nb_mem_free(es->saved);
    es->saved = NULL;
    es->nsaved = 0;
}

static int on_checkpoint(nb_model *m, const nb_logs *logs, void *ctx)
{
    nb_model_checkpoint *ck = ctx;
    double v = ck->monitor_loss ? logs->loss : logs->val_loss;
    if (ck->save_best_only) {
        if (isnan(v))
            return nb_set_error("nb_model_checkpoint: %s is NaN at epoch %d%s",
                                ck->monitor_loss ? "the loss" : "val_loss", logs->epoch + 1,
                                ck->monitor_loss ? "" : " (give nb_fit validation data, or "
                                                        "monitor the loss)");
        if (ck->saves && !(v < ck->best))
            return 0;
        ck->best = v;
    }
    if (ck->full ? nb_save_checkpoint(m, ck->path) : nb_save_weights(m, ck->path))
        return -1;
    ck->saved_epoch = logs->epoch;
    ck->saves++;
    return 0;
}

nb_callback nb_model_checkpoint_callback(nb_model_checkpoint *ck)
{
    return (nb_callback){.on_epoch = ck ? on_checkpoint : NULL, .ctx = ck};
}
