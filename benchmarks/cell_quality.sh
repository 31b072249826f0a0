#!/usr/bin/env bash
# The three cells side by side on CoNLL-2003, defaults plus --cell, as a user would run them:
#   for each cell: bptt train --task person --time-budget 10 and --task ner --time-budget 15, side by
#   side (one BLAS thread each on a 2-core machine), then bptt evaluate on eng.testa (which also
#   scores the unseen names: entities none of whose words occur in eng.train).
# Usage: benchmarks/cell_quality.sh [OUT_DIR] [CELL...]   (defaults: runs/cells, rnn gru lstm)
# Then: python benchmarks/summarize_runs.py OUT_DIR/*/   prints the table of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/cells}
shift || true
CELLS=${*:-rnn gru lstm}
DATA=${BPTT_DATA:-../shared/data}/conll2003
BPTT=${BPTT:-.venv/bin/bptt}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$OUT"

run() {  # cell task minutes
  local name=$2-$1
  { echo "\$ bptt train --train $DATA/eng.train --dev $DATA/eng.testa --task $2 --cell $1 --out $OUT/$name --time-budget $3"
    "$BPTT" train --train "$DATA/eng.train" --dev "$DATA/eng.testa" --task "$2" --cell "$1" \
      --out "$OUT/$name" --time-budget "$3" --quiet
    echo "\$ bptt evaluate --model $OUT/$name --data $DATA/eng.testa"
    "$BPTT" evaluate --model "$OUT/$name" --data "$DATA/eng.testa"
  } > "$OUT/$name.log" 2>&1
}

for cell in $CELLS; do
  date -u +"$cell: started %Y-%m-%d %H:%M UTC"
  run "$cell" person 10 &
  run "$cell" ner 15 &
  wait
done
date -u +"finished %Y-%m-%d %H:%M UTC"
.venv/bin/python benchmarks/summarize_runs.py "$OUT"/*/
