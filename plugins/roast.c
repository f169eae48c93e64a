/* roast: ROAST (Desai, Zhou & Shrivastava, "ROAST: Efficient Model
 * Compression with Random Operation Access Specific Tile Hashing", 2022; the
 * tile idea from Desai, Chou & Shrivastava, "Random Offset Block Embedding
 * (ROBE) for compressed embedding tables", MLSys 2022). The whole model reads
 * one array z of round((1 - s) * N) trained values (N = all prunable weights):
 * each layer's [out x fan_in] matrix is cut into tiles of tile_rows x
 * tile_cols weights, and a tile reads tile_rows * tile_cols consecutive values
 * of z starting at a hashed offset (wrapping at the end of z), so generating a
 * layer reads memory in runs rather than one hashed address per weight.
 * W_i = lambda_l * G_i * z[h(i)], G_i = +-1 hashed per weight, and lambda_l =
 * (the layer's init bound 1/sqrt(fan_in)) / (z's init bound), so the
 * generated model starts with the dense model's weight distribution.
 * z ~ U(-init_scale * b, init_scale * b), b the weight-weighted mean of the
 * layers' bounds: init_scale changes lambda, not the initial weights, which
 * is the sensitivity STABLE-RPS removes (see stable_rps). Gradients are plain
 * sums over the weights sharing a value (no scaling).
 *
 * Departures from the paper: tiles are taken along the row-major weight
 * matrix (the paper aligns them with its GPU matmul kernel's tiles), the hash
 * is splitmix64's finalizer seeded by the run's seed, and the initialization
 * is uniform as above (the paper's scale factor is the same ratio of init
 * standard deviations). See sharing.h. */
#include "sharing.h"

enum { ARG_INIT_SCALE, ARG_TILE_ROWS, ARG_TILE_COLS };

static const pb_param_spec params[] = {
    {.name = "init_scale", .type = PB_PT_REAL, .def = 1, .lo = 1e-4, .hi = 1e4,
     .help = "scale of the shared array's initialization relative to the mean layer init (changes lambda only)"},
    {.name = "tile_rows", .type = PB_PT_INT, .def = 4, .lo = 1, .hi = 4096, .help = "rows of a hashed tile"},
    {.name = "tile_cols", .type = PB_PT_INT, .def = 32, .lo = 1, .hi = 65536, .help = "columns of a hashed tile"},
    {.name = NULL},
};

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    return sh_create(h, c, SH_ROAST, args[ARG_INIT_SCALE], (int)args[ARG_TILE_ROWS], (int)args[ARG_TILE_COLS], 0,
                     out);
}

PB_PLUGIN_DEFINE(.name = "roast",
                 .description = "ROAST: one global shared array read in hashed tiles (Desai et al. 2022)",
                 .kind = PB_KIND_SHARING, .when = PB_WHEN_TRAINING, .params = params, .create = create,
                 .destroy = sh_destroy, .prune = sh_prune, .attach = sh_attach, .needs = PB_NEEDS_SHARING)
