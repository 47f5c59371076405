"""One time step of a tiny NTM, forward and back, with real numbers: what ``ntm-ref demo --step`` prints
and docs/one-step.md shows (scripts/one_step.py writes the page; tests/test_one_step.py keeps it current).

The model: B = 1 sequence, N = 6 memory slots of M = 3 numbers, one read head and one write head, a
feedforward controller of C = 5 units, 4 inputs and 3 outputs, the paper's conventions (NTMConfig's
defaults), parameters at a generic point (trace.random_params). The sequence has T = 5 steps; the page shows
step t = 3, so the state it starts from was written by steps 1 and 2 and its backward receives a gradient
carried back from steps 4 and 5.

The forward values are read from the reference engine's own step caches (model.step_forward). The backward
is done here again stage by stage, with the same functions in the same order as model.step_backward, so
that every intermediate gradient can be printed; the results are checked to be bit for bit those of
step_backward (``walk`` raises AssertionError otherwise), so the page cannot drift from the code.

Dimension legend: B batch, T time steps, N memory slots, M word width, R read heads, W write heads,
S shift-kernel width, C controller size.
"""
import numpy as np

from ntm_ref.addressing import content_backward, interpolate_backward, sharpen_backward, shift_backward
from ntm_ref.config import NTMConfig
from ntm_ref.controller import controller_backward
from ntm_ref.heads import HeadParams, heads_backward
from ntm_ref.linear import clip_backward, linear_backward
from ntm_ref.loss import bce_bits_backward, bce_bits_forward, normalise_mask
from ntm_ref.memory import read_backward, write_backward
from ntm_ref.model import backward_pass, forward_pass, step_backward
from ntm_ref.state import initial_state, zero_state_like

CONFIG = NTMConfig(input_size=4, output_size=3, memory_slots=6, memory_width=3, read_heads=1, write_heads=1,
                   controller="feedforward", controller_size=5)
T, SHOWN = 5, 2          # five steps; the one shown is index 2, i.e. t = 3: two writes before it (so the
                         # memory's rows differ in direction and content addressing has something to
                         # find) and two steps after it (so every part of dnext is non-zero)


# Added to the raw key strength and sharpening of both heads: at a random starting point beta is about 0.5
# and every content weighting is nearly uniform; a trained NTM's heads are sharp. The numbers are still
# exactly what the reference computes for these parameters.
KEY_STRENGTH_BIAS, GAMMA_BIAS = 8.0, 2.0


def _row(a):
    return "[" + " ".join(f"{v:+.4f}" for v in np.ravel(a)) + "]"


class _Page:
    """Lines of text: a heading, a value with the function and equation that made it, a matrix."""

    def __init__(self):
        self.lines = []

    def heading(self, text):
        self.lines += ["", text, "-" * len(text)]

    def text(self, text):
        self.lines.append(text)

    def value(self, name, a, where):
        row = _row(a)
        if len(row) > 52:                       # a long vector: the explanation on a line of its own
            self.lines += [f"  {name:<18} {row}", f"  {'':<18} {'':<52} {where}"]
        else:
            self.lines.append(f"  {name:<18} {row:<52} {where}".rstrip())

    def matrix(self, name, a, where):
        a = np.asarray(a)
        self.lines.append(f"  {name:<18} {where}".rstrip())
        for i, row in enumerate(a):
            self.lines.append(f"    slot {i}  {_row(row)}")


def make_example(seed=0):
    """The tiny model's parameters and one sequence.  -> (params, buffers, x (1, T, 4), y (1, T, 3), mask)."""
    from ntm_ref.model import init_buffers
    from ntm_ref.trace import random_params
    params = random_params(CONFIG, seed)
    M = CONFIG.memory_width
    for kind in ("read", "write"):       # sharper heads than a random start has, so the stages show
        params[f"{kind}.b"][M] += KEY_STRENGTH_BIAS
        params[f"{kind}.b"][M + 2 + CONFIG.shift_width] += GAMMA_BIAS
    rng = np.random.default_rng(seed + 1)
    x = rng.integers(0, 2, size=(1, T, CONFIG.input_size)).astype(np.float64)
    y = rng.integers(0, 2, size=(1, T, CONFIG.output_size)).astype(np.float64)
    return params, init_buffers(CONFIG, seed), x, y, np.ones((1, T))


def walk(seed=0):
    """The page as a list of lines (forward of step t = 2, then its backward)."""
    c = CONFIG
    params, buffers, x, y, mask = make_example(seed)
    state0 = initial_state(params, c, buffers, 1)
    logits, caches = forward_pass(params, c, x, state0)
    loss, loss_cache = bce_bits_forward(logits, y, normalise_mask(mask, logits.shape))
    dlogits = bce_bits_backward(loss_cache)
    t, cache = SHOWN, caches[SHOWN]
    prev = caches[t - 1].state
    p = _Page()
    p.text(f"ntm_ref walk-through: step t = {t + 1} of a {T}-step sequence, one sequence (B = 1)")
    p.text(f"  N = {c.memory_slots} slots x M = {c.memory_width}, R = 1 read head, W = 1 write head, "
           f"feedforward controller C = {c.controller_size}, shift range {c.shift_range} (S = {c.shift_width})")
    p.text("  every number below is float64 from the reference engine (ntm_ref/model.py), shown to 4 decimals")

    p.heading(f"Forward, step t = {t + 1} (model.step_forward; read before write)")
    p.text("state from step t-1:")
    p.matrix("M_{t-1}", prev.memory[0], "memory written by step t-1")
    p.value("r_{t-1}", prev.reads[0], "the read vector of step t-1")
    p.value("w^r_{t-1}", prev.w_read[0], "read weighting of step t-1")
    p.value("w^w_{t-1}", prev.w_write[0], "write weighting of step t-1")
    p.text("1. controller:")
    p.value("x_t", x[0, t], "this step's input")
    p.value("h_t", cache.controller_output[0], "controller_forward: tanh([x_t, r_{t-1}] W + b)")
    for kind, raw, hp, addr in (("read", cache.read_raw, cache.read_params, cache.read_address),
                                ("write", cache.write_raw, cache.write_params, cache.write_address)):
        n = 2 if kind == "read" else 3
        p.text(f"{n}. {kind} head: parameters from h_t, then addressing (eqs 5-9)")
        p.value("raw", raw[0, 0], f"linear_forward, clip_forward: clip(h_t W_{kind} + b_{kind})")
        p.value("k (key)", hp.key[0, 0], f"heads_forward: {c.key_activation}(raw[0:M])")
        p.value("beta", hp.beta[0, 0], f"{c.beta_activation}(raw[M]), > 0")
        p.value("g (gate)", hp.g[0, 0], f"{c.gate_activation}(raw[M+1]), in (0, 1)")
        p.value("s (shift)", hp.s[0, 0], "softmax(raw[M+2:M+2+S]): shifts -1, 0, +1")
        p.value("gamma", hp.gamma[0, 0], f"{c.gamma_activation}(raw[M+2+S]), >= 1")
        if kind == "write":
            p.value("e (erase)", hp.erase[0, 0], f"{c.erase_activation}(raw[M+3+S : 2M+3+S])")
            p.value("a (add)", hp.add[0, 0], f"{c.add_activation}(raw[2M+3+S :])")
        p.value("w_c (content)", addr.w_content[0, 0], "content_forward, eqs 5-6: softmax(beta K(k, M(i)))")
        p.value("w_g (gated)", addr.w_gated[0, 0], "interpolate_forward, eq 7: g w_c + (1 - g) w_{t-1}")
        p.value("w~ (shifted)", addr.w_shifted[0, 0], "shift_forward, eq 8: sum_j w_g(j) s(i - j)")
        p.value("w (sharpened)", addr.w[0, 0], "sharpen_forward, eq 9: w~^gamma / sum w~^gamma")
        if kind == "read":
            p.value("r_t", cache.read.w[0, 0] @ cache.read.memory[0], "read_forward, eq 2: sum_i w(i) M_{t-1}(i)")
    p.matrix("M_t", cache.state.memory[0], "write_forward, eqs 3-4: M_{t-1}(i) (1 - w(i) e) + w(i) a")
    p.text("5. output:")
    p.value("z_t (logits)", logits[0, t], "linear_forward, clip_forward: clip([h_t, r_t] W_out + b_out)")
    p.value("sigmoid(z_t)", 1 / (1 + np.exp(-logits[0, t])), "the predicted bits")
    p.value("y_t (target)", y[0, t], f"the sequence's loss over all {T} steps: {loss:.4f} bits (loss.py)")

    # ---- backward ----
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dnext = zero_state_like(caches[-1].state)
    for s in reversed(range(t + 1, T)):                # the later steps, as backward_pass runs them
        _, dnext = step_backward(dlogits[:, s], dnext, caches[s], c, grads)
    p.heading(f"Backward, step t = {t + 1} (model.step_backward: the forward's stages in reverse)")
    p.value("dL/dz_t", dlogits[0, t], "bce_bits_backward: mask (sigmoid(z) - y) / (B ln 2)")
    p.text("carried in from step t+1 (dnext: the gradient of the state this step produced):")
    p.matrix("dL/dM_t", dnext.memory[0], "through step t+1's read, write and content addressing")
    p.value("dL/dr_t", dnext.reads[0], "through step t+1's controller input")
    p.value("dL/dw^r_t", dnext.w_read[0], "through step t+1's interpolation (eq 7)")
    p.value("dL/dw^w_t", dnext.w_write[0], "through step t+1's interpolation (eq 7)")
    mine = {k: v.copy() for k, v in grads.items()}
    C = cache.controller_output.shape[1]
    p.text("5. output layer:")
    dcat, dW, db = linear_backward(clip_backward(dlogits[:, t], cache.out_clip), cache.out_linear)
    mine["out.W"] += dW
    mine["out.b"] += db
    dh = dcat[:, :C]
    dreads = dcat[:, C:].reshape(1, c.read_heads, -1) + dnext.reads
    p.value("dL/dh_t (output)", dh[0], "linear_backward: dz W_out^T, the h_t part")
    p.value("dL/dr_t (total)", dreads[0], "the r_t part, plus dnext's dL/dr_t")
    p.text("4. write head (it ran last, so its backward comes first):")
    dmemory, dw_write, derase, dadd = write_backward(dnext.memory, cache.write)
    p.matrix("dL/dM_{t-1} (write)", dmemory[0], "write_backward, eqs 3-4: dM_t (1 - w(i) e)")
    p.value("dL/dw (write)", dw_write[0, 0], "write_backward: sum_j dM_t(i, j) (a(j) - M_{t-1}(i, j) e(j))")
    p.value("dL/de", derase[0, 0], "write_backward: -sum_i dM_t(i) w(i) M_{t-1}(i)")
    p.value("dL/da", dadd[0, 0], "write_backward: sum_i dM_t(i) w(i)")
    dmem_w, dw_write_prev, dwp = _address_stages(p, dw_write + dnext.w_write, cache.write_address)
    p.text("3. read head:")
    dmem_r, dw_read = read_backward(dreads, cache.read)
    p.value("dL/dw (read)", dw_read[0, 0], "read_backward, eq 2: dL/dw(i) = dr . M_{t-1}(i)")
    dmem_a, dw_read_prev, drp = _address_stages(p, dw_read + dnext.w_read, cache.read_address)
    dmemory = dmemory + dmem_w + dmem_r + dmem_a
    p.text("2. heads, back to the controller output (heads_backward, clip_backward, linear_backward):")
    for kind, dp, lin, clip, heads in (("read", HeadParams(*drp), cache.read_linear, cache.read_clip,
                                        cache.read_heads),
                                       ("write", HeadParams(*dwp, derase, dadd), cache.write_linear,
                                        cache.write_clip, cache.write_heads)):
        draw = clip_backward(heads_backward(dp, heads).reshape(1, -1), clip)
        dh_k, dW, db = linear_backward(draw, lin)
        mine[f"{kind}.W"] += dW
        mine[f"{kind}.b"] += db
        p.value(f"dL/draw ({kind})", draw[0], "each activation's backward, 0 where clipped")
        p.value(f"dL/dh_t ({kind})", dh_k[0], f"draw W_{kind}^T")
        dh = dh + dh_k
    p.text("1. controller:")
    p.value("dL/dh_t (total)", dh[0], "output + read head + write head")
    dctrl_in, dctrl_state = controller_backward(dh, dnext.controller, cache.controller, mine)
    I = c.input_size
    dx_t, dreads_prev = dctrl_in[:, :I], dctrl_in[:, I:].reshape(1, c.read_heads, -1)
    p.value("dL/dx_t", dx_t[0], "controller_backward: (dh (1 - h^2)) W^T, the x_t part")
    p.text("carried to step t-1 (the dnext of step t-1's backward):")
    p.matrix("dL/dM_{t-1}", dmemory[0], "write + write addressing + read + read addressing")
    p.value("dL/dr_{t-1}", dreads_prev[0], "the controller input's r_{t-1} part")
    p.value("dL/dw^r_{t-1}", dw_read_prev[0, 0], "interpolate_backward: (1 - g) dw_g")
    p.value("dL/dw^w_{t-1}", dw_write_prev[0, 0], "interpolate_backward: (1 - g) dw_g")

    # the stage-by-stage backward must be exactly step_backward's
    check = {k: v.copy() for k, v in grads.items()}
    dx_ref, dprev_ref = step_backward(dlogits[:, t], dnext, cache, c, check)
    for name, a, b in (("dx_t", dx_t, dx_ref), ("dM", dmemory, dprev_ref.memory),
                       ("dr", dreads_prev, dprev_ref.reads), ("dw_read", dw_read_prev, dprev_ref.w_read),
                       ("dw_write", dw_write_prev, dprev_ref.w_write)):
        assert np.array_equal(a, b), f"the walk-through's {name} differs from step_backward's"
    for k in check:
        assert np.array_equal(mine[k], check[k]), f"the walk-through's gradient of {k} differs"
    full, _, _ = backward_pass(params, c, dlogits, caches)
    p.text("")
    p.text(f"Checked: these equal model.step_backward's results bit for bit; the whole sequence's "
           f"backward_pass gives |dL/dout.W| = {np.abs(full['out.W']).sum():.4f} (summed over entries).")
    return p.lines


def _address_stages(p, dw, addr):
    """address_backward, stage by stage (eqs 9, 8, 7, 5-6), printing each gradient."""
    p.value("dL/dw (total)", dw[0, 0], "the weighting's gradient, plus dnext's (used by step t+1)")
    dw_shifted, dgamma = sharpen_backward(dw, addr.sharpen)
    p.value("dL/dw~", dw_shifted[0, 0], f"sharpen_backward, eq 9; dL/dgamma = {dgamma[0, 0]:+.4f}")
    dw_gated, ds = shift_backward(dw_shifted, addr.shift)
    p.value("dL/dw_g", dw_gated[0, 0], f"shift_backward, eq 8; dL/ds = {_row(ds[0, 0])}")
    dw_content, dw_prev, dg = interpolate_backward(dw_gated, addr.interpolate)
    p.value("dL/dw_c", dw_content[0, 0], f"interpolate_backward, eq 7: g dw_g; dL/dg = {dg[0, 0]:+.4f}")
    dmemory, dkey, dbeta = content_backward(dw_content, addr.content)
    p.value("dL/dk", dkey[0, 0], f"content_backward, eqs 5-6; dL/dbeta = {dbeta[0, 0]:+.4f}")
    return dmemory, dw_prev, (dkey, dbeta, dg, ds, dgamma)


def text(seed=0):
    return "\n".join(walk(seed))


PAGE_INTRO = """\
# One time step, forward and back, with real numbers

This page is generated: `python scripts/one_step.py` writes it, and `ntm-ref demo --step` prints the same
numbers. A test (tests/test_one_step.py) regenerates it and fails if a single digit differs, so it always
shows what the code computes today.

The model is tiny so that every number fits on the page: one sequence (B = 1), a memory of N = 6 slots of
M = 3 numbers, one read head and one write head, a feedforward controller of C = 5 units, 4 inputs and 3
outputs, and the paper's conventions (the defaults of `NTMConfig`, [conventions.md](conventions.md)). Its
parameters are a generic random point, except that both heads' key strength and sharpening biases are
raised (by {beta:g} and {gamma:g}) so that the heads focus as a trained NTM's do. The sequence has T = {T}
steps and the page follows step t = {t}: its state was written by the steps before it, and its backward
receives the gradient carried back from the steps after it.

Read it beside the code: the forward is `step_forward` in [ntm_ref/model.py](../ntm_ref/model.py), stage by
stage (1 controller, 2 read head, 3 write head, 5 output; step 4 of the module docstring is the write,
shown with the write head), each line naming the function and the paper's equation. The backward is
`step_backward`, which visits the stages in reverse: the output layer, then the write head (it ran last),
then the read head, then both heads' parameters, then the controller. What it receives from step t+1
(`dnext`) is added where that state was used: dL/dr_t to the output layer's, dL/dw_t to the addressing's,
dL/dM_t to the write's. What it returns is the `dnext` of step t-1. The derivation of every formula is in
[derivations.md](derivations.md).

```text
"""


def page(seed=0):
    """docs/one-step.md: the introduction, then the walk-through's text in a code block."""
    intro = PAGE_INTRO.format(beta=KEY_STRENGTH_BIAS, gamma=GAMMA_BIAS, T=T, t=SHOWN + 1)
    return intro + text(seed) + "\n```\n"
