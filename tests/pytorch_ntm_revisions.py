"""What each revision of pytorch-ntm (github.com/loudinthecloud/pytorch-ntm) computes, as a small PyTorch
module written here from reading that revision's code (ntm/memory.py, head.py, controller.py, ntm.py, aio.py;
docs/conventions.md section 3 quotes the lines). Not their code: the same module tree, so that its
state_dict has the names and shapes theirs saves, and the same operations in the same order.

    build(revision, seed, N, M, C, layers, I, O) -> EncapsulatedNTM with random weights (float64)
    run(model, x) -> probabilities (B, T, O), read weightings (B, T, N), write weightings (B, T, N)

Revision groups (what changed between them): "relu" = 0682553 (relu on k, beta, e, a; softmax(relu(s));
gamma = 1 + relu; the shift padded by 2 and cropped); "softplus_shift" = d8fedf6, 64f1d58 (padded by 2),
7ae872d (padded by 1); "latest" = d7b3840, 3c64937 (softmax(s)). Used by tests/test_interop.py.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

GROUPS = {
    "0682553": "relu", "d8fedf6": "softplus_shift", "64f1d58": "softplus_shift", "7ae872d": "softplus_shift",
    "d7b3840": "latest", "3c64937": "latest",
}
WIDE_PADDING = ("0682553", "d8fedf6", "64f1d58")     # t = cat([w[-2:], w, w[:2]]), then c[1:-1]


class NTMMemory(nn.Module):
    def __init__(self, N, M, wide_padding):
        super().__init__()
        self.N, self.M, self.wide_padding = N, M, wide_padding
        self.register_buffer("mem_bias", torch.empty(N, M))
        bound = 1 / np.sqrt(N + M)
        nn.init.uniform_(self.mem_bias, -bound, bound)

    def reset(self, batch_size):
        self.memory = self.mem_bias.clone().repeat(batch_size, 1, 1)

    def read(self, w):
        return torch.matmul(w.unsqueeze(1), self.memory).squeeze(1)

    def write(self, w, e, a):
        prev = self.memory
        self.memory = prev * (1 - w.unsqueeze(-1) * e.unsqueeze(1)) + w.unsqueeze(-1) * a.unsqueeze(1)

    def address(self, k, beta, g, s, gamma, w_prev):
        cos = F.cosine_similarity(self.memory + 1e-16, k.unsqueeze(1) + 1e-16, dim=-1)    # (B, N)
        wc = F.softmax(beta * cos, dim=1)
        wg = g * wc + (1 - g) * w_prev
        shifted = torch.stack([self._convolve(wg[b], s[b]) for b in range(wg.shape[0])])
        w = shifted ** gamma
        return w / (w.sum(dim=1, keepdim=True) + 1e-16)

    def _convolve(self, w, s):
        """conv1d is a cross-correlation: c[j] = sum_k s[k] t[j + k]."""
        if self.wide_padding:
            t = torch.cat([w[-2:], w, w[:2]])
            return F.conv1d(t.view(1, 1, -1), s.view(1, 1, -1)).view(-1)[1:-1]
        t = torch.cat([w[-1:], w, w[:1]])
        return F.conv1d(t.view(1, 1, -1), s.view(1, 1, -1)).view(-1)


class Head(nn.Module):
    def __init__(self, memory, C, group, write):
        super().__init__()
        self.memory, self.group = memory, group
        M = memory.M
        self.lengths = [M, 1, 1, 3, 1] + ([M, M] if write else [])
        fc = nn.Linear(C, sum(self.lengths))
        if write:
            self.fc_write = fc
        else:
            self.fc_read = fc

    def _split(self, h):
        out = (self.fc_write if hasattr(self, "fc_write") else self.fc_read)(h)
        return torch.split(out, self.lengths, dim=1)

    def _activate(self, k, beta, g, s, gamma):
        if self.group == "relu":
            return F.relu(k), F.relu(beta), torch.sigmoid(g), F.softmax(F.relu(s), dim=1), 1 + F.relu(gamma)
        s = F.softmax(F.softplus(s), dim=1) if self.group == "softplus_shift" else F.softmax(s, dim=1)
        return k.clone(), F.softplus(beta), torch.sigmoid(g), s, 1 + F.softplus(gamma)

    def forward(self, h, w_prev):
        parts = self._split(h)
        w = self.memory.address(*self._activate(*parts[:5]), w_prev)
        if hasattr(self, "fc_read"):
            return self.memory.read(w), w
        e, a = parts[5:]
        e, a = (F.relu(e), F.relu(a)) if self.group == "relu" else (torch.sigmoid(e), a)
        self.memory.write(w, e, a)
        return None, w


class LSTMController(nn.Module):
    def __init__(self, inputs, C, layers):
        super().__init__()
        self.lstm = nn.LSTM(input_size=inputs, hidden_size=C, num_layers=layers)
        self.lstm_h_bias = nn.Parameter(torch.randn(layers, 1, C) * 0.05)
        self.lstm_c_bias = nn.Parameter(torch.randn(layers, 1, C) * 0.05)

    def create_new_state(self, batch_size):
        return (self.lstm_h_bias.clone().repeat(1, batch_size, 1), self.lstm_c_bias.clone().repeat(1, batch_size, 1))

    def forward(self, x, state):
        out, state = self.lstm(x.unsqueeze(0), state)
        return out.squeeze(0), state


class NTM(nn.Module):
    def __init__(self, I, O, controller, memory, heads):
        super().__init__()
        self.controller, self.memory, self.heads = controller, memory, nn.ModuleList(heads)
        self.register_buffer("read0_bias", torch.randn(1, memory.M) * 0.01)
        self.fc = nn.Linear(controller.lstm.hidden_size + memory.M, O)

    def create_new_state(self, batch_size):
        reads = [self.read0_bias.clone().repeat(batch_size, 1)]
        weightings = [torch.zeros(batch_size, self.memory.N, dtype=self.read0_bias.dtype) for _ in self.heads]
        return reads, self.controller.create_new_state(batch_size), weightings

    def forward(self, x, prev_state):
        """One step: (o (B, O), state) with state = (reads, controller state, [w of each head])."""
        prev_reads, prev_controller_state, prev_heads_states = prev_state
        h, controller_state = self.controller(torch.cat([x] + prev_reads, dim=1), prev_controller_state)
        reads, heads_states = [], []
        for head, w_prev in zip(self.heads, prev_heads_states):
            r, w = head(h, w_prev)
            if r is not None:
                reads.append(r)
            heads_states.append(w)
        o = torch.sigmoid(self.fc(torch.cat([h] + reads, dim=1)))
        return o, (reads, controller_state, heads_states)


class EncapsulatedNTM(nn.Module):
    """pytorch-ntm's user-facing module: init_sequence(B), then forward(x_t) step by step (x None: zeros)."""

    def __init__(self, revision, I, O, C, layers, N, M):
        super().__init__()
        group = GROUPS[revision]
        self.num_inputs = I
        memory = NTMMemory(N, M, revision in WIDE_PADDING)
        controller = LSTMController(I + M, C, layers)
        heads = [Head(memory, C, group, write=False), Head(memory, C, group, write=True)]
        self.ntm = NTM(I, O, controller, memory, heads)
        self.memory = memory

    def init_sequence(self, batch_size):
        self.batch_size = batch_size
        self.memory.reset(batch_size)
        self.previous_state = self.ntm.create_new_state(batch_size)

    def forward(self, x=None):
        if x is None:
            x = torch.zeros(self.batch_size, self.num_inputs, dtype=self.ntm.read0_bias.dtype)
        o, self.previous_state = self.ntm(x, self.previous_state)
        return o, self.previous_state


def build(revision, seed=0, N=16, M=5, C=12, layers=1, I=9, O=8, scale=0.6, beta_bias=0.0):
    """An EncapsulatedNTM of ``revision`` with random float64 weights N(0, scale^2) (biases too, so no value
    sits at a kink or a symmetry); beta_bias is added to both heads' beta bias (e.g. 22 puts F.softplus
    beyond its threshold of 20)."""
    torch.manual_seed(seed)
    model = EncapsulatedNTM(revision, I, O, C, layers, N, M).double()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * scale)
        for head in model.ntm.heads:
            fc = head.fc_write if hasattr(head, "fc_write") else head.fc_read
            fc.bias[M] += beta_bias
    return model


def run(model, x):
    """x (B, T, I) numpy -> (probabilities (B, T, O), read weightings (B, T, N), write weightings (B, T, N)),
    through pytorch-ntm's own loop: init_sequence, then one forward per step."""
    x = torch.as_tensor(x, dtype=model.ntm.read0_bias.dtype)
    model.init_sequence(x.shape[0])
    outs, w_read, w_write = [], [], []
    with torch.no_grad():
        for t in range(x.shape[1]):
            o, (_, _, (w_r, w_w)) = model(x[:, t])
            outs.append(o)
            w_read.append(w_r)
            w_write.append(w_w)
    stack = lambda a: torch.stack(a, dim=1).numpy()   # noqa: E731
    return stack(outs), stack(w_read), stack(w_write)
