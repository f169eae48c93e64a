/* grand: the static subset of the examples with the highest GraNd score, the
 * norm of the per-example loss gradient after a short scoring run (Paul et
 * al. 2021, "Deep Learning on a Data Diet: Finding Important Examples Early in
 * Training", NeurIPS; the paper's GraNd is taken at initialization: epochs=0).
 * See data_score.h for the procedure and departures. */
#define DS_NAME "grand"
#define DS_GRAD_NORM 1
#define DS_DESCRIPTION "data: a fixed subset of the r*N highest gradient norms (GraNd) after a scoring run"
#include "data_score.h"
