/*
 * op.c - the operation table and helpers shared by operations.
 */
#include "op.h"

#include "err.h"
#include "mem.h"

#include <stdio.h>
#include <string.h>

static const op_def *const ops[] = {&op_cog,
                                    &op_warp,
                                    &op_mosaic,
                                    &op_terrain,
                                    &op_calc,
                                    &op_zonal_stats,
                                    &op_fill,
                                    &op_flow_direction,
                                    &op_flow_accumulation,
                                    &op_streams,
                                    &op_watershed,
                                    &op_basins,
                                    &op_twi,
                                    &op_hand,
                                    &op_container,
                                    &op_observe,
                                    &op_grid,
                                    &op_assemble,
                                    &op_collection,
                                    NULL};

const op_def *op_find(const char *name)
{
    for (size_t i = 0; name && ops[i]; i++)
        if (!strcmp(ops[i]->name, name)) return ops[i];
    return NULL;
}

const op_def *const *op_all(void)
{
    return ops;
}

int op_result_add(op_result *out, const char *path, const char *name, const char *media_type,
                  const char *role, bool is_cog)
{
    if (out->n_files >= OP_MAX_OUTPUTS)
        return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "too many output files");
    op_output *f = &out->files[out->n_files];
    f->path = mem_strdup(path);
    if (!f->path) return err_oom();
    f->name = name;
    f->media_type = media_type;
    f->role = role;
    f->is_cog = is_cog;
    out->n_files++;
    return 0;
}

void op_result_free(op_result *out)
{
    for (size_t i = 0; i < out->n_files; i++)
        mem_free(out->files[i].path);
    memset(out, 0, sizeof *out);
}

const task_input *op_single_input(const task *t, const char *const *exclude_params)
{
    const task_input *found = NULL;
    size_t count = 0;
    for (size_t i = 0; i < t->n_inputs; i++) {
        bool excluded = false;
        for (size_t k = 0; exclude_params && exclude_params[k]; k++) {
            const char *ref = params_str(t->params, exclude_params[k], NULL);
            if (ref && !strcmp(ref, t->inputs[i].name)) excluded = true;
        }
        if (excluded) continue;
        found = &t->inputs[i];
        count++;
    }
    if (count != 1) {
        err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "inputs",
                "inputs: operation %s takes exactly one raster input, got %zu", t->operation,
                count);
        return NULL;
    }
    return found;
}
