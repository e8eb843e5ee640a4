#!/usr/bin/env bash
# bash tools/mhe_paper.sh DATASET [--dry-run] [--set key=value ...]
#
# MHE-XMC as its run.sh trains a set (algorithms.md 3.3): configs/mhe/DATASET.json on each of its encoders into
# runs/mhe/DATASET/<preset>, then their top-k lists ensembled by their summed sigmoids (MHE's ensemble.py;
# sigmoid_average ranks the same) with python -m tfxc.ensemble. MHE's encoders are BERT, RoBERTa and XLNet; keras-hub
# has no XLNet tokenizer, so two here. Each run resumes where it stopped; --set values go to every run;
# PRESETS="DIR1 DIR2" trains on local preset directories instead of the keras-hub names (which download once).
# --dry-run prints the commands instead of running them.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: bash tools/mhe_paper.sh DATASET [--dry-run] [--set key=value ...]" >&2
  exit 2
fi
dataset=$1
shift
config="configs/mhe/${dataset}.json"
if [ ! -f "$config" ]; then
  echo "tools/mhe_paper.sh: no $config; the sets are: $(cd configs/mhe && ls *.json | sed 's/\.json$//' | tr '\n' ' ')" >&2
  exit 2
fi
run=()
if [ "${1:-}" = "--dry-run" ]; then
  run=(echo)
  shift
fi
out="runs/mhe/${dataset}"
dirs=()
for preset in ${PRESETS:-bert_base_en_uncased roberta_base_en}; do
  name=$(basename "$preset")
  "${run[@]}" python -m tfxc.train --config "$config" --model-dir "${out}/${name}" --set "model.encoder.preset=${preset}" "$@"
  dirs+=(--model-dir "${out}/${name}")
done
"${run[@]}" python -m tfxc.ensemble "${dirs[@]}" --method sigmoid_average
