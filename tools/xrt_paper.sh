#!/usr/bin/env bash
# bash tools/xrt_paper.sh DATASET [--dry-run] [--set key=value ...]
#
# XR-Transformer as the paper runs it (PECOS examples/xr-transformer-neurips21/run.sh DATASET): three
# models of configs/xrt/DATASET.json into runs/xrt/DATASET/model-{0,1,2}, then their top-k lists
# ensembled with the paper's method for the set (algorithms.md 1.8) by python -m tfxc.ensemble.
# The paper's three models differ by backbone on the small sets and by seed (Amazon-3M: also the
# preliminary tree's leaf size, 100 then 32) on the large ones; with one backbone family here, they
# differ by runtime.seed, and on amazon-3m by the leaf size as in the paper. Each run resumes where
# it stopped; --set values go to every run. --dry-run prints the commands instead of running them.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: bash tools/xrt_paper.sh DATASET [--dry-run] [--set key=value ...]" >&2
  exit 2
fi
dataset=$1
shift
config="configs/xrt/${dataset}.json"
if [ ! -f "$config" ]; then
  echo "tools/xrt_paper.sh: no $config; the sets are: $(cd configs/xrt && ls *.json | sed 's/\.json$//' | tr '\n' ' ')" >&2
  exit 2
fi
case "$dataset" in
  eurlex-4k|amazoncat-13k|amazon-670k) method=softmax_average ;;
  wiki10-31k|amazon-3m) method=rank_average ;;
  wiki-500k) method=sigmoid_average ;;
  *) method=softmax_average ;;
esac
run=()
if [ "${1:-}" = "--dry-run" ]; then
  run=(echo)
  shift
fi
out="runs/xrt/${dataset}"
dirs=()
for m in 0 1 2; do
  extra=(--set "runtime.seed=${m}")
  if [ "$dataset" = amazon-3m ] && [ "$m" -gt 0 ]; then
    extra+=(--set model.head.matcher_max_leaf_size=32)
  fi
  "${run[@]}" python -m tfxc.train --config "$config" --model-dir "${out}/model-${m}" "${extra[@]}" "$@"
  dirs+=(--model-dir "${out}/model-${m}")
done
"${run[@]}" python -m tfxc.ensemble "${dirs[@]}" --method "$method"
