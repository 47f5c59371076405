# Research script (written for ntm_ref): enumerates parameter-counting conventions against the
# paper's Tables 1-3. Its findings are summarised in docs/param-counts.md. Run: python scripts/param_count_search.py
"""Enumerate parameter-counting conventions for the NTM paper (Graves et al. 2014, arXiv:1410.5401)
Tables 1-3 and report which reproduce the published #params.  Memory N=128 x M=20."""
import itertools
from collections import Counter
N, M = 128, 20
PAPER_LSTM = {'copy': (256, 1352969), 'repeat': (512, 5312007), 'assoc': (256, 1344518),
              'ngram': (128, 331905), 'sort': (128, 384424)}
PAPER_FF = {'copy': (1, [100], 17162), 'repeat': (1, [100], 16712), 'assoc': (4, [256], 146845),
            'ngram': (1, [100], 14656), 'sort': (8, [512], 508305)}
PAPER_LN = {'copy': (1, [100], 67561), 'repeat': (1, [100], 66111), 'assoc': (1, [100], 70330),
            'ngram': (1, [100], 61749), 'sort': (5, [100, 100], 269038)}
IO_RANGE = {'copy': [(9, 8), (9, 9), (10, 8), (10, 9)], 'repeat': [(8, 7), (9, 8), (10, 8), (10, 9), (11, 9)],
            'assoc': [(8, 6)], 'ngram': [(1, 1)], 'sort': [(9, 8), (10, 8), (11, 8)]}

# ---------------------------------------------------------------- 1. LSTM baseline (Table 3)
def lstm_params(I, O, C, L, skip_in, skip_out, k, obias):
    """k = extra per-cell parameters per layer (4 gate biases, 3 peepholes, learned h0/c0 ...)"""
    tot = 0
    for l in range(L):
        x = I if l == 0 else C + (I if skip_in else 0)
        tot += 4 * C * (x + C) + k * C
    return tot + O * ((L * C if skip_out else C) + obias)

def search_lstm():
    print("=== LSTM baseline: conventions reproducing >=4 rows exactly (I,O searched in 1..20) ===")
    hits = []
    for si, so, ob, k in itertools.product([0, 1], [0, 1], [0, 1], range(0, 11)):
        sol = {}
        for t, (C, P) in PAPER_LSTM.items():
            s = [(I, O) for I in range(1, 21) for O in range(1, 21) if lstm_params(I, O, C, 3, si, so, k, ob) == P]
            if s: sol[t] = s
        if len(sol) >= 4: hits.append((si, so, ob, k, sol))
    for si, so, ob, k, sol in hits:
        print(f"skip_in={si} skip_out={so} out_bias={ob} k={k}:", sol)
    best = dict(I=None)
    io = {'copy': (10, 9), 'repeat': (8, 7), 'assoc': (8, 6), 'ngram': (1, 1), 'sort': (10, 8)}
    print("\nBest convention: skip_in=1, skip_out=1, out_bias=1, k=6  ->  per row:")
    print(f"{'task':8}{'LxC':>7}{'I':>4}{'O':>4}{'paper':>11}{'computed':>11}{'diff':>9}")
    for t, (C, P) in PAPER_LSTM.items():
        I, O = io[t]; c = lstm_params(I, O, C, 3, 1, 1, 6, 1)
        print(f"{t:8}{'3x'+str(C):>7}{I:>4}{O:>4}{P:>11,}{c:>11,}{P-c:>9,}")
    print("  sort: 348,424 computed vs 384,424 printed -> adjacent-digit transposition (48<->84); no (I,O) fits 384,424.")

# ---------------------------------------------------------------- 2. NTMs (Tables 1, 2)
FLAGS = ['read_to_ctrl', 'reads_to_heads', 'reads_to_out', 'head_bias', 'ctrl_bias', 'out_bias',
         'learned_mem', 'learned_r0', 'learned_w0', 'skip_2layer']
def ntm_params(kind, H, Cs, I, O, S, f, k=6, c0=0):
    R = W = H; RM = R * M
    inp = I + (RM if f['read_to_ctrl'] else 0)
    tot = 0
    for li, c in enumerate(Cs):
        x = inp if li == 0 else Cs[li - 1] + (inp if f['skip_2layer'] else 0)
        tot += c * (x + f['ctrl_bias']) if kind == 'ff' else 4 * c * (x + c) + k * c
    hid = sum(Cs) if (f['skip_2layer'] and len(Cs) > 1) else Cs[-1]
    pr = M + 1 + 1 + S + 1; pw = pr + 2 * M          # key,beta,g,shift(S),gamma ; + erase,add
    tot += (R * pr + W * pw) * (hid + (RM if f['reads_to_heads'] else 0) + f['head_bias'])
    tot += O * (hid + (RM if f['reads_to_out'] else 0) + f['out_bias'])
    tot += (N * M if f['learned_mem'] else 0) + (RM if f['learned_r0'] else 0) + (2 * H * N if f['learned_w0'] else 0)
    return tot + c0

def search_ntm(kind, table, ks, Smax=64, io_mode='anchored'):
    io_anchor = {'copy': [(10, 9)], 'repeat': [(8, 7)], 'assoc': [(8, 6)], 'ngram': [(1, 1)], 'sort': [(10, 8)]}
    IOs = io_anchor if io_mode == 'anchored' else IO_RANGE
    results = []
    for bits in itertools.product([0, 1], repeat=len(FLAGS)):
        f = dict(zip(FLAGS, bits))
        for k in ks:
            rows = {}
            for t, (H, Cs, P) in table.items():
                best = None
                for (I, O) in IOs[t]:
                    for S in range(1, Smax + 1):
                        d = P - ntm_params(kind, H, Cs, I, O, S, f, k)
                        if best is None or abs(d) < abs(best[0]): best = (d, I, O, S)
                rows[t] = best
            exact = sum(1 for v in rows.values() if v[0] == 0)
            err = sum(abs(v[0]) for v in rows.values())
            results.append((exact, -err, f, k, rows))
    results.sort(key=lambda r: (-r[0], -r[1]))
    return results

def show(kind, table, res, n=3):
    for exact, negerr, f, k, rows in res[:n]:
        on = [x for x in FLAGS if f[x]]
        print(f"  exact rows={exact}/5  sum|diff|={-negerr}  k={k if kind!='ff' else '-'}  flags={on}")
        for t, (d, I, O, S) in rows.items():
            P = table[t][2]
            print(f"     {t:7} I={I:<3}O={O:<3}S={S:<3} paper={P:>8,} computed={P-d:>8,} diff={d:>+7,}")

def parity_report():
    print("\n=== Parity check (convention-independent) ===")
    print("FF and LSTM-NTM counts for the SAME task always have opposite parity:")
    for t in PAPER_FF:
        a, b = PAPER_FF[t][2], PAPER_LN[t][2]
        print(f"  {t:7} FF={a:>8,} ({'odd' if a%2 else 'even'})   LSTM-NTM={b:>8,} ({'odd' if b%2 else 'even'})")
    print("  With even controller sizes (100/256/512), every term of the enumerated family is even except O*(fan-in)\n"
          "  when the output layer has a bias; heads contribute H*(4M+6+2S)*(fan-in), always even.  LSTM-NTM parity\n"
          "  equals parity(O) for O=9,7,6,1,8 (consistent), FF parity = parity(O)+1 in all five tasks -> the FF counts\n"
          "  need an odd term (e.g. a single extra scalar) absent from every standard convention, so no shared\n"
          "  convention can reproduce both tables.")
    d = {t: PAPER_LN[t][2] - PAPER_FF[t][2] for t in ('copy', 'repeat', 'ngram')}
    print(f"  LN-FF differences (same I/O, same 1 head/100): {d}.  Any shared head/output convention gives\n"
          "  LN-FF = 300*(controller inputs) + const (+202*dS); copy-repeat = 1000 is not a multiple of 300 (or of\n"
          "  300a+202b for small integers a=dI,b=dS with dI=2), so copy and repeat rows are mutually inconsistent.")

if __name__ == '__main__':
    search_lstm()
    parity_report()
    for kind, table, ks in (('ff', PAPER_FF, [0]), ('lstm', PAPER_LN, [4, 6, 7])):
        for mode in ('anchored', 'range'):
            res = search_ntm(kind, table, ks, io_mode=mode)
            print(f"\n=== {kind.upper()}-NTM, I/O {mode} ({'baseline I/O' if mode=='anchored' else 'plausible ranges'}), "
                  f"S in 1..64 per row: best conventions ===")
            print("  distribution of #exact rows over all conventions:", dict(Counter(r[0] for r in res)))
            show(kind, table, res, n=3)
