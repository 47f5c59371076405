"""gradcheck on ordinary hand-written NumPy layers with planted mistakes: detection by kind of mistake, false
alarms on the correct backwards, time per check; beside torch.autograd.gradcheck at its defaults when torch
is installed (the NumPy pair wrapped in a torch.autograd.Function, float64).

    python benchmarks/gradcheck_layers.py              # the table of docs/gradcheck.md
    python benchmarks/gradcheck_layers.py --trials 5

Every layer has a correct backward and planted mistakes of four kinds: a scaling by 1.001, a scaling by
1.0001, a missing term, and one wrong entry (the first gradient entry off by 1e-3 of the gradient's
scale). Inputs: ordinary (N(0, 1)) and tiny (N(0, 1e-4^2)). Run by hand, not in the test suite.
"""
import argparse
import time

import numpy as np

from gradcheck import check_op


def affine(x, w, b):
    return x @ w + b, (x, w)


def affine_back(d, c):
    x, w = c
    return d @ w.T, x.T @ d, d.sum(axis=0)


def softmax(x):
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    y = z / z.sum(axis=-1, keepdims=True)
    return y, y


def softmax_back(d, y):
    return y * (d - (d * y).sum(axis=-1, keepdims=True))


def layer_norm(x):
    mu, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
    s = np.sqrt(var + 1e-5)
    xh = (x - mu) / s
    return xh, (xh, s)


def layer_norm_back(d, c):
    xh, s = c
    n = xh.shape[-1]
    return (d - d.mean(axis=-1, keepdims=True) - xh * (d * xh).mean(axis=-1, keepdims=True)) / s


def layer_norm_back_missing(d, c):           # the xh (d . xh) term left out
    xh, s = c
    return (d - d.mean(axis=-1, keepdims=True)) / s


def gelu(x):                                  # tanh approximation
    k = np.sqrt(2 / np.pi)
    t = np.tanh(k * (x + 0.044715 * x ** 3))
    return 0.5 * x * (1 + t), (x, t)


def gelu_back(d, c):
    x, t = c
    k = np.sqrt(2 / np.pi)
    return d * (0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * k * (1 + 3 * 0.044715 * x ** 2))


def gelu_back_missing(d, c):                 # the 3 x^2 term of the inner derivative left out
    x, t = c
    k = np.sqrt(2 / np.pi)
    return d * (0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * k)


def l2_normalise(x):
    n = np.sqrt((x ** 2).sum(axis=-1, keepdims=True))
    return x / n, (x / n, n)


def l2_back(d, c):
    y, n = c
    return (d - y * (d * y).sum(axis=-1, keepdims=True)) / n


def l2_back_missing(d, c):
    return d / c[1]


def conv1d_with_kernel(x, k):                # valid cross-correlation, x (L,), k (K,) -> (L - K + 1,)
    windows = np.lib.stride_tricks.sliding_window_view(x, k.size)
    return windows @ k, (windows, x.size, k.size, k.copy())


def conv1d_back_flipped(d, c):               # the kernel applied the wrong way round in dx
    windows, L, K, k = c
    dx = np.zeros(L)
    for j in range(K):
        dx[j:j + d.size] += d * k[K - 1 - j]
    return dx, windows.T @ d


def conv1d_back_correct(d, c):
    windows, L, K, k = c
    dx = np.zeros(L)
    for j in range(K):
        dx[j:j + d.size] += d * k[j]
    return dx, windows.T @ d


def tanh(x):
    y = np.tanh(x)
    return y, y


def tanh_back(d, y):
    return d * (1 - y ** 2)


def tanh_back_missing(d, y):                 # the derivative of the identity instead
    return d * 1.0


def scaled(back, factor):
    def b(d, c):
        g = back(d, c)
        return tuple(gi * factor for gi in g) if isinstance(g, tuple) else g * factor
    return b


def one_entry_off(back):
    def b(d, c):
        g = back(d, c)
        first = g[0] if isinstance(g, tuple) else g
        first = first.copy()
        first.flat[0] += 1e-3 * np.abs(first).max()
        return (first,) + tuple(g[1:]) if isinstance(g, tuple) else first
    return b


def layers(rng, scale):
    """name -> (forward, correct backward, {mistake: backward}, inputs)."""
    x = rng.normal(size=(3, 5)) * scale
    return {
        "affine": (affine, affine_back, {}, [x, rng.normal(size=(5, 4)), rng.normal(size=4)]),
        "softmax": (softmax, softmax_back, {}, [x]),
        "layer norm": (layer_norm, layer_norm_back, {"missing term": layer_norm_back_missing}, [x]),
        "GELU (tanh)": (gelu, gelu_back, {"missing term": gelu_back_missing}, [x]),
        "l2-normalise": (l2_normalise, l2_back, {"missing term": l2_back_missing}, [x]),
        "conv1d": (conv1d_with_kernel, conv1d_back_correct, {"flipped kernel": conv1d_back_flipped},
                   [rng.normal(size=9) * scale, rng.normal(size=3)]),
        "tanh": (tanh, tanh_back, {"missing term": tanh_back_missing}, [x]),
    }


def torch_check(forward, backward, inputs):
    """torch.autograd.gradcheck at its defaults on the NumPy pair (None without torch)."""
    try:
        import torch
    except ImportError:
        return None

    class Op(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *xs):
            out, cache = forward(*[x.detach().numpy() for x in xs])
            ctx.cache = cache
            return torch.from_numpy(np.asarray(out, dtype=np.float64))

        @staticmethod
        def backward(ctx, d):
            g = backward(d.numpy(), ctx.cache)
            g = g if isinstance(g, tuple) else (g,)
            return tuple(torch.from_numpy(np.asarray(gi, dtype=np.float64)) for gi in g)
    xs = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in inputs]
    try:
        return bool(torch.autograd.gradcheck(Op.apply, xs, raise_exception=False))
    except Exception:
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    kinds = ["correct", "x 1.001", "x 1.0001", "one entry off", "missing term / flipped"]
    tally = {tool: {k: [0, 0] for k in kinds} for tool in ("gradcheck", "torch")}
    seconds = []
    for trial in range(args.trials):
        for scale in (1.0, 1e-4):
            for name, (forward, good, mistakes, inputs) in layers(np.random.default_rng(trial), scale).items():
                cases = [("correct", good), ("x 1.001", scaled(good, 1.001)), ("x 1.0001", scaled(good, 1.0001)),
                         ("one entry off", one_entry_off(good))]
                cases += [("missing term / flipped", b) for b in mistakes.values()]
                for kind, back in cases:
                    start = time.perf_counter()
                    ok = check_op(forward, back, inputs, seed=trial).ok
                    seconds.append(time.perf_counter() - start)
                    right = ok if kind == "correct" else not ok
                    tally["gradcheck"][kind][0] += right
                    tally["gradcheck"][kind][1] += 1
                    t = torch_check(forward, back, inputs)
                    if t is not None:
                        tally["torch"][kind][0] += (t if kind == "correct" else not t)
                        tally["torch"][kind][1] += 1
    print(f"{'case':<24} {'gradcheck':>12} {'torch.autograd.gradcheck':>26}")
    for kind in kinds:
        g, t = tally["gradcheck"][kind], tally["torch"][kind]
        verb = "passed" if kind == "correct" else "caught"
        torch_text = f"{t[0]} of {t[1]}" if t[1] else "not installed"
        print(f"{kind + ' (' + verb + ')':<24} {g[0]:>5} of {g[1]:<4} {torch_text:>26}")
    print(f"gradcheck: median {1000 * np.median(seconds):.1f} ms per check")


if __name__ == "__main__":
    main()
