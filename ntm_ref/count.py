"""Parameter counts, by formula, for the NTM and the LSTM baseline (compare the paper's Tables 1-3).

Legend: I input width, O output width, C_l controller layer sizes, N memory slots, M word width,
R read heads, W write heads, S = 2 * shift_range + 1. docs/param-counts.md compares these counts
with the paper's for every configuration of Tables 1-3.
"""
from ntm_ref.config import NTMConfig


def _lstm_layer(inputs, size, initial_state=True):
    """Weights 4C (D + C), gate biases 4C, learned initial h0 and c0: 2C (when learned)."""
    return 4 * size * (inputs + size) + 4 * size + (2 * size if initial_state else 0)


def count_params(config: NTMConfig, model="ntm", skip_connections=True):
    """Number of learned parameters of ``NTM(config)`` (model="ntm") or ``LSTMBaseline(config,
    skip_connections=...)`` (model="lstm"): exactly the total size of that model's ``params`` dict.

    NTM:  controller  feedforward sum_l (D_l C_l + C_l), or LSTM sum_l (4 C_l (D_l + C_l) + 6 C_l),
                      with D_1 = I + R M (the input and the previous reads), D_l = C_{l-1}
          heads       C (R P_r + W P_w) + R P_r + W P_w, with P_r = M + S + 3 and P_w = P_r + 2M
          output      (C + R M) O + O
          initial     N M (learned memory) + R M (learned reads) + (R + W) N (learned weightings)
    LSTM baseline (skip connections: the input feeds every layer, every layer feeds the output):
          sum_l (4 C_l (D_l + C_l) + 6 C_l) with D_1 = I, D_l = C_{l-1} + I, and (sum_l C_l) O + O.
    """
    c = config
    sizes = c.controller_sizes
    if model == "lstm":
        total, below = 0, None
        for size in sizes:
            inputs = c.input_size if below is None else below + (c.input_size if skip_connections else 0)
            total += _lstm_layer(inputs, size)
            below = size
        out_in = sum(sizes) if skip_connections else sizes[-1]
        return total + out_in * c.output_size + c.output_size
    if model != "ntm":
        raise ValueError(f"model: got {model!r}; allowed: 'ntm', 'lstm'")
    R, W, M, N = c.read_heads, c.write_heads, c.memory_width, c.memory_slots
    total, inputs = 0, c.input_size + R * M
    for size in sizes:
        total += (_lstm_layer(inputs, size, c.learn_initial_controller_state) if c.controller == "lstm"
                  else inputs * size + size)
        inputs = size
    heads = R * c.read_head_size + W * c.write_head_size
    total += inputs * heads + heads
    total += (inputs + R * M) * c.output_size + c.output_size
    if c.memory_init in ("learned", "learned_constant"):
        total += N * M
    if c.learn_initial_reads:
        total += R * M
    if c.learn_initial_weights:
        total += (R + W) * N
    return total
