/* pb_par: a small pool of worker threads for the engine's own kernels
 * and the layers' SGEMMs (pb_layer.c splits them; OpenBLAS runs on one thread).
 *
 * pb_par_run(fn, ctx, n) calls fn(ctx, i, n) for every part i < n: part i
 * runs on thread i % threads, the caller being thread 0, and the call returns
 * when every part is done. A kernel gives each part its own slice of the
 * output, or its own partial sums that the caller adds in part order, so a
 * result depends on the number of parts, never on timing. Between runs a
 * worker polls for the next one for a few tens of microseconds, then sleeps
 * on a condition variable: the layers of a training step hand work over
 * every few hundred microseconds, and a sleeping thread takes tens of them to
 * wake, but a thread that kept spinning would take the core from a thread
 * with work on a shared machine.
 *
 * One thread at a time may call pb_par_run, and never from inside a part. */
#ifndef PB_PAR_H
#define PB_PAR_H

#define PB_PAR_MAX_THREADS 64

typedef void (*pb_par_fn)(void *ctx, int part, int nparts);

/* Runs the engine's kernels on n threads (clamped to [1, PB_PAR_MAX_THREADS]),
 * starting or stopping workers. Returns the number of threads now in use,
 * which is smaller than n only when the system refused to start a thread. */
int pb_par_set_threads(int n);
/* Threads for a run: the pool gets `threads` (< 1: OpenBLAS's default count)
 * and OpenBLAS itself one, since the layers split their SGEMMs over the pool. */
void pb_par_use_threads(int threads);

/* Threads in use: 1 until pb_par_set_threads asks for more. */
int pb_par_threads(void);

void pb_par_run(pb_par_fn fn, void *ctx, int nparts);

/* First of the n elements that part `part` of nparts handles: parts differ
 * in size by at most one element. */
static inline int pb_par_begin(int n, int part, int nparts)
{
    return (int)((long long)n * part / nparts);
}

#endif
