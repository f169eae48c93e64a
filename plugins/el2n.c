/* el2n: the static subset of the examples with the highest EL2N score,
 * ||softmax(f(x)) - onehot(y)||_2 after a short scoring run (Paul et al. 2021,
 * "Deep Learning on a Data Diet: Finding Important Examples Early in
 * Training", NeurIPS). See data_score.h for the procedure and departures. */
#define DS_NAME "el2n"
#define DS_GRAD_NORM 0
#define DS_DESCRIPTION "data: a fixed subset of the r*N highest EL2N scores after a scoring run"
#include "data_score.h"
