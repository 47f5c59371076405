"""Print docs/param-counts.md's table: ntm_ref's count_params for every configuration of the paper's
Tables 1-3, beside the paper's numbers.  Run: python scripts/param_counts_table.py

Input/output widths: the paper does not state them all. We use the widths that make the LSTM baseline
counts exact (scripts/param_count_search.py): copy 10/9, repeat copy 8/7, associative recall 8/6,
N-grams 1/1, priority sort 10/8.
"""
from ntm_ref.config import NTMConfig
from ntm_ref.count import count_params

IO = {"copy": (10, 9), "repeat copy": (8, 7), "associative recall": (8, 6), "dynamic N-grams": (1, 1),
      "priority sort": (10, 8)}
# task: (FF heads, FF controller, FF count), (LSTM-NTM heads, controller, count), (LSTM layers, count)
PAPER = {
    "copy": ((1, 100, 17162), (1, 100, 67561), ((256, 256, 256), 1352969)),
    "repeat copy": ((1, 100, 16712), (1, 100, 66111), ((512, 512, 512), 5312007)),
    "associative recall": ((4, 256, 146845), (1, 100, 70330), ((256, 256, 256), 1344518)),
    "dynamic N-grams": ((1, 100, 14656), (1, 100, 61749), ((128, 128, 128), 331905)),
    "priority sort": ((8, 512, 508305), (5, (100, 100), 269038), ((128, 128, 128), 384424)),
}


def main():
    print("| task | model | heads / controller | paper | ntm_ref | ntm_ref - paper |")
    print("|---|---|---|---:|---:|---:|")
    for task, (ff, lstm_ntm, lstm) in PAPER.items():
        I, O = IO[task]
        for label, (heads, ctrl, paper), kind in (("FF-NTM", ff, "feedforward"), ("LSTM-NTM", lstm_ntm, "lstm")):
            config = NTMConfig(input_size=I, output_size=O, controller=kind, controller_size=ctrl,
                               read_heads=heads, write_heads=heads)
            ours = count_params(config)
            print(f"| {task} | {label} | {heads} / {ctrl} | {paper:,} | {ours:,} | {ours - paper:+,} |")
        layers, paper = lstm
        ours = count_params(NTMConfig(input_size=I, output_size=O, controller_size=layers), model="lstm")
        print(f"| {task} | LSTM | {len(layers)} x {layers[0]} | {paper:,} | {ours:,} | {ours - paper:+,} |")


if __name__ == "__main__":
    main()
