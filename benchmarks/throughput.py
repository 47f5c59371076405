"""Throughput of loss_and_grads (sequences/s): the reference NTM.run against the fast engine
(ntm_ref.engines.fast) and the fast engine over processes (ntm_ref.engines.parallel).

The paper's copy configuration: NTMConfig(input_size=9, output_size=8, controller_size=100), feedforward
controller 100, memory 128 x 20, one read and one write head; a copy sequence of length L takes 2 L + 1
steps (L = 20 -> 41). Each cell is the median of --repeats timed calls after one warm-up call; the columns
are timed interleaved (one call of each in turn), so background load affects them alike.

    python benchmarks/throughput.py                       # batch 1, 16, 64; 1 BLAS thread
    python benchmarks/throughput.py --batch-sizes 64 --repeats 9 --threads 2

--threads sets the BLAS thread count through the environment before NumPy is imported (it has to be set
before OpenBLAS starts). The fast engine's own two Python threads over the batch are separate: the
column "fast 1 thr" turns them off, "fast" uses the default. The column "parallel" is ntm_ref.engines.parallel.run
with --workers processes (the main process and workers - 1 forked workers, each one BLAS thread).

The column "torch" is the PyTorch mirror (tests/torch_ntm.py: the same model in PyTorch, gradients by
autograd, float64) on the same parameters and batches, timed in the same interleaved rounds, with
--torch-threads intra-op threads (default 1, like the one BLAS thread of the NumPy engines);
"fast1/torch" is "fast 1 thr" over it (both single-threaded). Without torch installed the two columns
are left out, with a note.
"""
import argparse
import os
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--length", type=int, default=20, help="copy length L (2 L + 1 time steps)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (set before numpy loads)")
    parser.add_argument("--skip-reference", action="store_true", help="time only the fast engines")
    parser.add_argument("--workers", type=int, default=2, help="processes of the parallel column")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads of the torch column (default 1)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import time

    import numpy as np

    from ntm_ref.engines import fast, parallel
    from ntm_ref.config import NTMConfig
    from ntm_ref.model import NTM

    try:
        import torch
    except ImportError:
        torch = torch_ntm = None
    else:
        torch.set_num_threads(args.torch_threads)
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
        import torch_ntm

    config = NTMConfig(input_size=9, output_size=8, controller_size=100)
    model = NTM(config, seed=0)
    T = 2 * args.length + 1

    def batch(B, seed=0):
        """A copy-task batch: L random 8-bit vectors, a delimiter, then L blank steps to recall them."""
        rng = np.random.default_rng(seed)
        L = args.length
        bits = (rng.random((B, L, 8)) > 0.5).astype(np.float64)
        x = np.zeros((B, T, 9))
        x[:, :L, :8] = bits
        x[:, L, 8] = 1.0
        y = np.zeros((B, T, 8))
        y[:, L + 1:] = bits
        mask = np.zeros((B, T))
        mask[:, L + 1:] = 1.0
        return x, y, mask

    def rates(fns, B):
        """Sequences/s of each fn: one warm-up call each, then --repeats rounds timing one call of every
        fn in turn (interleaved, so a change of background load hits every column alike); medians."""
        for fn in fns.values():
            fn()                                           # warm-up (and the parallel workers' start)
        times = {name: [] for name in fns}
        for _ in range(args.repeats):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        return {name: B / float(np.median(t)) for name, t in times.items()}

    print(f"copy configuration, {T} steps, BLAS threads {args.threads}, median of {args.repeats} "
          f"(columns interleaved), parallel workers {args.workers}, load average {os.getloadavg()[0]:.2f}")
    if torch is None:
        print("note: torch is not installed; the torch mirror's columns are left out")
    else:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s), float64")
    header = (f"{'batch':>6} {'reference seq/s':>16} {'fast 1 thr seq/s':>17} {'fast seq/s':>11} {'ratio':>7}"
              f" {'parallel seq/s':>15} {'par/fast1':>10}"
              + (f" {'torch seq/s':>12} {'fast1/torch':>12}" if torch else ""))
    print(header)
    for B in args.batch_sizes:
        x, y, mask = batch(B)
        fns = {"one": lambda: fast.run(model.params, config, model.buffers, x, y, mask, threads=1),
               "default": lambda: fast.run(model.params, config, model.buffers, x, y, mask),
               "parallel": lambda: parallel.run(model.params, config, model.buffers, x, y, mask,
                                                workers=args.workers)}
        if torch is not None:
            fns["torch"] = lambda: torch_ntm.loss_and_grads(config, model.params, model.buffers, x, y, mask)
        if not args.skip_reference:
            fns["reference"] = lambda: model.run(x, y, mask, engine="reference")
        r = rates(fns, B)
        ref, one, default, par = r.get("reference"), r["one"], r["default"], r["parallel"]
        ratio = f"{max(one, default) / ref:7.1f}" if ref else f"{'-':>7}"
        ref_text = f"{ref:16.1f}" if ref else f"{'-':>16}"
        torch_text = f" {r['torch']:12.1f} {one / r['torch']:12.2f}" if torch else ""
        print(f"{B:>6} {ref_text} {one:17.1f} {default:11.1f} {ratio} {par:15.1f} {par / one:10.2f}{torch_text}",
              flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")

if __name__ == "__main__":
    main()
