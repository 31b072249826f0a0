#!/usr/bin/env bash
# The tagger's accuracy targets, one command each, as a user would run them (defaults only):
#   person (CoNLL-2003): bptt train --task person --time-budget 10, then bptt evaluate on eng.testa
#   ner    (CoNLL-2003): bptt train --task ner    --time-budget 15, then bptt evaluate on eng.testa
#   the same two on WikiANN-en (its "en:" prefix is removed automatically).
# Usage: benchmarks/tagger_targets.sh [OUT_DIR]   (default runs/targets); logs go to OUT_DIR/*.log
# Runs two trainings side by side, one BLAS thread each, on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/targets}
DATA=${BPTT_DATA:-../shared/data}
BPTT=${BPTT:-.venv/bin/bptt}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$OUT"

run() {  # name train dev task minutes
  local name=$1 train=$2 dev=$3 task=$4 minutes=$5
  { echo "\$ bptt train --train $train --dev $dev --task $task --out $OUT/$name --time-budget $minutes"
    "$BPTT" train --train "$train" --dev "$dev" --task "$task" --out "$OUT/$name" --time-budget "$minutes"
    echo "\$ bptt evaluate --model $OUT/$name --data $dev"
    "$BPTT" evaluate --model "$OUT/$name" --data "$dev"
  } > "$OUT/$name.log" 2>&1
}

date -u +"started %Y-%m-%d %H:%M UTC"
run conll-person "$DATA/conll2003/eng.train" "$DATA/conll2003/eng.testa" person 10 &
run conll-ner "$DATA/conll2003/eng.train" "$DATA/conll2003/eng.testa" ner 15 &
wait
run wikiann-person "$DATA/wikiann-en/train" "$DATA/wikiann-en/dev" person 10 &
run wikiann-ner "$DATA/wikiann-en/train" "$DATA/wikiann-en/dev" ner 15 &
wait
date -u +"finished %Y-%m-%d %H:%M UTC"
for f in "$OUT"/*.log; do echo "== $f"; grep -E "stopped:|processed|FB1|token level" "$f"; done
