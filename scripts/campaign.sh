#!/usr/bin/env bash
# The seed campaign of docs/results.md: every sweep whose table is there, with the budget it ran with.
#
#     bash scripts/campaign.sh OUT [PART ...]     # PART: copy-ff copy-lstm ar-ff ar-lstm repeat-copy baseline long
#
# Each part is one `ntm-ref sweep` into OUT/<part> followed by `ntm-ref report OUT/<part> --generalisation`.
# Rerunning skips finished points and resumes interrupted ones from their checkpoints (Ctrl-C or `kill`
# stops a sweep at a checkpoint). A run that stopped at its time limit counts as finished; to give every
# such point more time, rerun its part with a larger budget: MINUTES=30 bash scripts/campaign.sh OUT copy-lstm
# (the sweep continues those points from their checkpoints; points that converged stay as they are).
# Needs the sweep extra: pip install ".[sweep,plot]". Two runs at a time on a 2-core machine by default.
# DRY_RUN=1 prints the commands instead of running them.
set -euo pipefail
OUT=${1:?usage: bash scripts/campaign.sh OUT [PART ...]}
shift
PARTS=("$@")
[ ${#PARTS[@]} -gt 0 ] || PARTS=(copy-ff copy-lstm ar-ff ar-lstm repeat-copy baseline long)

sweep() {   # sweep PART DEFAULT_MINUTES ARGS...: the part's sweep, then its report
    local part=$1 minutes=${MINUTES:-$2}
    shift 2
    if [ -n "${DRY_RUN:-}" ]; then
        echo "ntm-ref sweep $* --max-minutes $minutes --out $OUT/$part"
        return
    fi
    echo "== $part ($(date -u +%H:%M:%S) UTC, --max-minutes $minutes)"
    ntm-ref sweep "$@" --max-minutes "$minutes" --out "$OUT/$part"
    ntm-ref report "$OUT/$part" --generalisation
}

for part in "${PARTS[@]}"; do
    case $part in
        copy-ff)     sweep copy-ff 10 --task copy --seeds 0-9 --early-stop ;;
        copy-lstm)   sweep copy-lstm 10 --task copy --model ntm-lstm --seeds 0-9 --optimizer rmsprop --early-stop ;;
        ar-ff)       sweep ar-ff 12 --task associative_recall --seeds 0-4 --batch-size 16 --optimizer adam \
                         --eval-every 100 ;;
        ar-lstm)     sweep ar-lstm 10 --task associative_recall --model ntm-lstm --seeds 0-4 --batch-size 16 \
                         --optimizer adam --eval-every 100 ;;
        repeat-copy) sweep repeat-copy 12 --task repeat_copy --model ntm-ff ntm-lstm --seeds 0-4 --early-stop ;;
        baseline)    sweep baseline 10 --task copy associative_recall --model lstm --seeds 0-2 --early-stop ;;
        long)        sweep long 12 --task ngrams priority_sort --seeds 0-2 ;;
        *) echo "unknown part: $part (parts: copy-ff copy-lstm ar-ff ar-lstm repeat-copy baseline long)" >&2
           exit 2 ;;
    esac
done
