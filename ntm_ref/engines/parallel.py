"""The fast engine over PROCESSES (for speed, not for reading: the model is ntm_ref/model.py): the batch
split in contiguous parts, each part run by ntm_ref.engines.fast.run,
the main process computing part 0 while persistent forked worker processes compute the others.

Why processes: fast.run spends most of its time in many small NumPy calls per time step, so two Python
threads over halves of the batch wait on the GIL (measured slower than one thread, see ntm_ref.engines.fast).
Processes do not share a GIL. The cost is moving each part's inputs to a worker and its results back
(pickled through a pipe: the parameters, x / y / mask of the part, 0.3 MB, and back the part's gradients,
dx and dstate0, 1.1 MB, for the copy configuration at batch 64; pickling both ways ~0.3 ms of CPU and
combining ~0.2 ms, against ~50 ms of work per half). The main process's part runs in one dedicated
thread of its own (fast.run keeps its work buffers per thread; this keeps them apart from the caller's
own fast.run calls at other batch sizes).

How the parts combine (fast.run of a part of B_k sequences returns the gradients of ITS batch mean):
  * loss and every gradient (the learned initial-state parameters' included: fast.run passes each part's
    dstate0 into them, and that map is linear) are batch means: combined = sum_k (B_k / B) part_k;
  * logits and probs concatenate along the batch axis;
  * dx and dstate0 are per-sequence gradients of the batch-mean loss: part k's are 1 / B_k of its own
    sequences' losses, so they are scaled by B_k / B and concatenated.
The result agrees with fast.run on the whole batch (and with the reference) to round-off (tested to rtol
1e-10 in tests/test_parallel.py) and is bit-identical from call to call (fixed split, fixed order of the
combination, one BLAS thread per worker).

Workers: created lazily on the first call that needs them, one pipe each (no helper threads in the main
process), 'fork' start method; each sets its OpenBLAS to one thread. Where fork is unavailable (not Linux
/ macOS) or workers cannot start, every part runs in the main process, one after another, with the same
arithmetic (so the same numbers). The pool is shut down at interpreter exit (atexit) or by shutdown().
A forked child of the main process (a worker of someone else's pool) never reuses the parent's pipes.

Public API: ``run(params, config, buffers, x, y=None, mask=None, state=None, workers=2)`` returning an
ntm_ref.state.RunResult with ``caches=None``; ``shutdown()``.
"""
import atexit
import concurrent.futures
import ctypes
import multiprocessing
import os
import signal
import threading
import traceback

import numpy as np

from ntm_ref.engines import fast
from ntm_ref.controller import ControllerState
from ntm_ref.state import NTMState, RunResult

# Below this many sequences the whole batch runs in the main process as one part (fast.run, threads=1).
# Not a tuned threshold: on the loaded 2-core machine of 2026-11-25 (about one core busy with other
# jobs throughout) the split was slower than fast.run with one thread at every batch size measured
# (benchmarks/throughput.py, interleaved medians: batch 8 0.6x, 16 0.6-0.7x, 64 0.8-0.9x); no quiet
# measurement could be made.
MIN_BATCH = 8

_LOCK = threading.Lock()        # one call at a time uses the pipes
_POOL = None                    # _Pool, created lazily
_MAIN = None                    # (pid, one-thread executor) that runs the main process's part


# ---------------------------------------------------------------------------------------------------
# one BLAS thread in the workers
# ---------------------------------------------------------------------------------------------------

def _set_blas_threads(n):
    """Set the OpenBLAS thread count of this process through its C API (the environment is read only when
    OpenBLAS loads, before the fork). Returns True when it found an OpenBLAS to set."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return False
    done = False
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                     "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(ctypes.c_int(n))
                done = True
                break
    return done


# ---------------------------------------------------------------------------------------------------
# the worker processes
# ---------------------------------------------------------------------------------------------------

def _worker_main(conn, inherited, blas_threads):
    """A worker's loop: receive (params, config, buffers, x, y, mask, state), send ("ok", RunResult) or
    ("error", exception, traceback text); None (or the main process's end of the pipe closing) ends it.

    inherited: the main process's ends of the pipes, copied into this process by the fork; closed here,
    or the worker would never see EOF when the main process dies."""
    for other in inherited:
        other.close()
    # Ctrl-C in a terminal signals the whole process group: the main process owns it (and ends its workers);
    # SIGTERM ends a worker plainly, whatever handlers the main process had when it forked this one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if blas_threads is not None:
        _set_blas_threads(blas_threads)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            break
        if job is None:
            break
        try:
            conn.send(("ok", fast.run(*job, threads=1)))
        except BaseException as exc:   # noqa: BLE001  (sent back and re-raised in the caller)
            try:
                conn.send(("error", exc, traceback.format_exc()))
            except Exception:          # an unpicklable exception
                conn.send(("error", RuntimeError(repr(exc)), traceback.format_exc()))
    conn.close()


class _Pool:
    """n persistent forked worker processes, each with its own duplex pipe."""

    def __init__(self, n, blas_threads=1):
        ctx = multiprocessing.get_context("fork")
        self.pid = os.getpid()
        self.conns, self.procs = [], []
        for _ in range(n):
            parent, child = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=_worker_main, args=(child, self.conns + [parent], blas_threads),
                               daemon=True, name="ntm-parallel-worker")
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def close(self):
        if os.getpid() != self.pid:     # a forked child must not touch its parent's workers
            return
        for conn in self.conns:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
        for proc in self.procs:
            proc.join(timeout=2.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=1.0)
        for conn in self.conns:
            conn.close()


def _fork_available():
    return "fork" in multiprocessing.get_all_start_methods()


def _pool(n):
    """The process's pool with at least n workers (created or grown on demand), or None without fork."""
    global _POOL
    if not _fork_available():
        return None
    if _POOL is not None and _POOL.pid != os.getpid():
        _POOL = None                    # inherited through a fork: not ours
    if _POOL is None or len(_POOL.procs) < n or not all(p.is_alive() for p in _POOL.procs):
        if _POOL is not None:
            _POOL.close()
        try:
            _POOL = _Pool(n)
        except (OSError, AssertionError):   # AssertionError: multiprocessing refuses children of a daemon
            _POOL = None
    return _POOL


def shutdown():
    """Stop the worker processes (they are started again by the next call that needs them)."""
    global _POOL
    locked = _LOCK.acquire(timeout=10.0)     # at exit, another thread may be stuck in a call
    try:
        if _POOL is not None:
            _POOL.close()
            _POOL = None
    finally:
        if locked:
            _LOCK.release()


atexit.register(shutdown)


# ---------------------------------------------------------------------------------------------------
# splitting and combining
# ---------------------------------------------------------------------------------------------------

def _rows(a, rows):
    return None if a is None else a[rows]


def _state_rows(state, rows):
    if state is None:
        return None
    ctrl = ControllerState(tuple(a[rows] for a in state.controller.h), tuple(a[rows] for a in state.controller.c))
    return NTMState(state.memory[rows], state.reads[rows], state.w_read[rows], state.w_write[rows], ctrl)


def _mask_rows(mask, rows, B):
    if mask is None:
        return None
    mask = np.asarray(mask, dtype=np.float64)
    if mask.ndim < 1 or mask.shape[0] != B:
        return mask                    # a wrong shape: fast.run raises the usual ValueError
    return mask[rows]


def _scaled_cat(arrays, weights):
    """Concatenate along the batch axis, part k scaled by weights[k]."""
    return np.concatenate([a * w for a, w in zip(arrays, weights)], axis=0)


def _combine(results, sizes, params):
    B = sum(sizes)
    if len(results) == 1:
        return results[0]
    logits = np.concatenate([r.logits for r in results], axis=0)
    probs = np.concatenate([r.probs for r in results], axis=0)
    if results[0].loss is None:
        return RunResult(logits, probs, None, None, None, None, None)
    weights = [b / B for b in sizes]
    loss = float(sum(w * r.loss for w, r in zip(weights, results)))
    grads = {}
    for k in params:
        g = weights[0] * results[0].grads[k]
        for w, r in zip(weights[1:], results[1:]):
            g += w * r.grads[k]
        grads[k] = g
    dx = _scaled_cat([r.dx for r in results], weights)
    s = [r.dstate0 for r in results]
    n = len(s[0].controller.h)
    ctrl = ControllerState(tuple(_scaled_cat([p.controller.h[l] for p in s], weights) for l in range(n)),
                           tuple(_scaled_cat([p.controller.c[l] for p in s], weights) for l in range(n)))
    dstate0 = NTMState(_scaled_cat([p.memory for p in s], weights), _scaled_cat([p.reads for p in s], weights),
                       _scaled_cat([p.w_read for p in s], weights), _scaled_cat([p.w_write for p in s], weights),
                       ctrl)
    return RunResult(logits, probs, loss, grads, dx, dstate0, None)


# ---------------------------------------------------------------------------------------------------
# the public entry point
# ---------------------------------------------------------------------------------------------------

def run(params, config, buffers, x, y=None, mask=None, state=None, workers=2):
    """NTM.run over ``workers`` processes: fast.run on contiguous parts of the batch, combined.

    x (B, T, I); y (B, T, O) or None; mask None, (B, T) or (B, T, O); state an explicit initial NTMState
    (its gradient comes back as dstate0) or None (the model's own initial state, whose learned parameters
    get gradients). workers: how many processes share the batch, the main process included (workers=2:
    the main process and one worker); batches under MIN_BATCH sequences, or workers=1, run in the main
    process alone. -> RunResult(logits, probs, loss, grads, dx, dstate0, caches=None).
    """
    if not fast.supports(config):
        raise ValueError(f"parallel.run does not support this config: {config!r}")
    workers = int(workers)
    if workers < 1:
        raise ValueError(f"workers: got {workers}; must be >= 1")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"x: got shape {x.shape}; must be (B, T, input_size)")
    if y is not None:
        y = np.asarray(y, dtype=np.float64)
    B = x.shape[0]
    n_parts = min(workers, B) if B >= MIN_BATCH else 1
    if n_parts == 1:
        return fast.run(params, config, buffers, x, y, mask, state, threads=1)
    cuts = np.linspace(0, B, n_parts + 1).astype(int)
    parts = [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]
    jobs = [(params, config, buffers, x[rows], _rows(y, rows), _mask_rows(mask, rows, B),
             _state_rows(state, rows)) for rows in parts]
    with _LOCK:
        pool = _pool(n_parts - 1)
        if pool is None:
            results = [fast.run(*job, threads=1) for job in jobs]
        else:
            results = _run_on_pool(pool, jobs)
    return _combine(results, [rows.stop - rows.start for rows in parts], params)


def _main_executor():
    """The thread that runs the main process's part. fast.run keeps its work buffers per thread; a thread
    of our own keeps the part's buffers apart from the caller's own fast.run calls at other batch sizes
    (which would otherwise reallocate them on every alternation)."""
    global _MAIN
    if _MAIN is None or _MAIN[0] != os.getpid():
        _MAIN = (os.getpid(), concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ntm-parallel-main"))
    return _MAIN[1]


def _run_on_pool(pool, jobs):
    """jobs[0] in this process, jobs[1:] on the pool's workers; -> results in job order."""
    global _POOL
    sent = []
    try:
        for conn, job in zip(pool.conns, jobs[1:]):
            conn.send(job)
            sent.append(conn)
    except (OSError, ValueError):
        _drain(sent)
        pool.close()
        _POOL = None
        return [fast.run(*job, threads=1) for job in jobs]
    try:
        first = _main_executor().submit(fast.run, *jobs[0], threads=1).result()
    except BaseException:
        _drain(sent)
        raise
    results, error = [first], None
    for conn in sent:
        try:
            reply = conn.recv()
        except (EOFError, OSError) as exc:
            pool.close()
            _POOL = None
            raise RuntimeError("an ntm_ref.engines.parallel worker process died") from exc
        if reply[0] == "ok":
            results.append(reply[1])
        elif error is None:
            error = reply
    if error is not None:
        raise error[1] from RuntimeError(f"in an ntm_ref.engines.parallel worker:\n{error[2]}")
    return results


def _drain(conns):
    """Receive and drop the replies to jobs already sent, so the pipes stay in step."""
    for conn in conns:
        try:
            conn.recv()
        except (EOFError, OSError):
            pass
