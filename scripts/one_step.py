"""Write docs/one-step.md: one time step of a tiny NTM, forward and back, with real numbers.

    python scripts/one_step.py            # rewrites docs/one-step.md
    python scripts/one_step.py --check    # exit 1 if docs/one-step.md is not what the code gives today

The text comes from ntm_ref.walkthrough (the same as `ntm-ref demo --step`).
"""
import argparse
import os
import sys

from ntm_ref.walkthrough import page

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "one-step.md")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    text = page()
    if args.check:
        with open(PATH, encoding="utf-8") as f:
            same = f.read() == text
        print("docs/one-step.md is current" if same else "docs/one-step.md is stale: run scripts/one_step.py")
        return 0 if same else 1
    with open(PATH, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.normpath(PATH)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
