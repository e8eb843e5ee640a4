#!/usr/bin/env bash
# Train all independent parts of a model (MACH's R repetitions), PARALLEL at a time, then evaluate them.
#
#   bash train.sh CONFIG [PARALLEL] [MODEL_DIR] [--set section.key=value ...]
#
# The head says how many parts it has (`python -m tfxc.train --num-parts`); a head that trains as a
# whole is simply trained and evaluated. Each part is an independent process (`python -m tfxc.train
# --part r`); MACH's repetitions never communicate (Medini et al., 2019). With tmux installed the parts
# run in windows of one tmux session (attach with `tmux attach -t <session>` to watch them); without
# tmux, or with TFXC_NO_TMUX=1, they run as background processes. Either way each writes
# MODEL_DIR/logs/part-NNN.log and its exit status to MODEL_DIR/logs/part-NNN.exit. A part that already
# finished is skipped, an interrupted one resumes from its last checkpoint, so re-running the same
# command after a failure completes the job.
# Several machines sharing MODEL_DIR: run `python -m tfxc.train --config CONFIG --model-dir MODEL_DIR
# --part r` for disjoint sets of r on each, then `bash train.sh CONFIG 1 MODEL_DIR` anywhere (it finds
# them finished, links and evaluates them). Arguments after MODEL_DIR (e.g. --set overrides) go to every
# `tfxc.train` call, the part count and the link included.
set -euo pipefail

CONFIG=${1:?usage: bash train.sh CONFIG [PARALLEL] [MODEL_DIR]}
PARALLEL=${2:-2}
MODEL_DIR=${3:-runs/$(basename "$CONFIG" .json)}
PYTHON=${PYTHON:-python}
EXTRA=("${@:4}")
EXTRA_QUOTED=""
for arg in "${EXTRA[@]+"${EXTRA[@]}"}"; do EXTRA_QUOTED="$EXTRA_QUOTED $(printf '%q' "$arg")"; done

PARTS=$("$PYTHON" -m tfxc.train --config "$CONFIG" "${EXTRA[@]+"${EXTRA[@]}"}" --num-parts)
if [ "$PARTS" -le 1 ]; then
  echo "train.sh: the head of $CONFIG trains as a whole; training it in one process into $MODEL_DIR"
  "$PYTHON" -m tfxc.train --config "$CONFIG" --model-dir "$MODEL_DIR" "${EXTRA[@]+"${EXTRA[@]}"}"
  exit 0
fi
echo "train.sh: $PARTS parts of $CONFIG, $PARALLEL at a time, into $MODEL_DIR"

# Convert the data once, before the parts start reading it.
"$PYTHON" -m tfxc.convert --config "$CONFIG" "${EXTRA[@]+"${EXTRA[@]}"}" >/dev/null

LOGS="$MODEL_DIR/logs"
mkdir -p "$LOGS"
# Share the cores between the processes instead of oversubscribing them.
CORES=$(nproc 2>/dev/null || echo 2)
THREADS=$(( CORES / PARALLEL > 0 ? CORES / PARALLEL : 1 ))

USE_TMUX=0
if command -v tmux >/dev/null 2>&1 && [ -z "${TFXC_NO_TMUX:-}" ]; then
  USE_TMUX=1
  SESSION="tfxc-$(basename "$MODEL_DIR")-$$"
fi

launch() {
  local r=$1 tag log status cmd
  tag=$(printf 'part-%03d' "$r")
  log="$LOGS/$tag.log"; status="$LOGS/$tag.exit"
  rm -f "$status"
  cmd="TF_NUM_INTRAOP_THREADS=$THREADS TF_NUM_INTEROP_THREADS=1 '$PYTHON' -m tfxc.train --config '$CONFIG'"
  # --skip-eval: one part alone ranks nothing worth reading; the whole model is evaluated at the end.
  cmd="$cmd --model-dir '$MODEL_DIR' --part $r --skip-eval$EXTRA_QUOTED > '$log' 2>&1; echo \$? > '$status'"
  if [ "$USE_TMUX" = 1 ]; then
    if tmux has-session -t "$SESSION" 2>/dev/null; then
      tmux new-window -d -t "$SESSION" -n "$tag" "bash -c \"$cmd\""
    else
      tmux new-session -d -s "$SESSION" -n "$tag" "bash -c \"$cmd\""
      echo "train.sh: tmux session $SESSION (tmux attach -t $SESSION)"
    fi
  else
    bash -c "$cmd" &
  fi
  echo "train.sh: started part $r (log $log)"
}

finished() { [ -s "$LOGS/$(printf 'part-%03d' "$1").exit" ]; }

next=0 running=() failed=0
while :; do
  still=()
  for r in "${running[@]+"${running[@]}"}"; do
    if finished "$r"; then
      code=$(cat "$LOGS/$(printf 'part-%03d' "$r").exit")
      if [ "$code" != 0 ]; then
        echo "train.sh: part $r failed (exit $code); see $LOGS/$(printf 'part-%03d' "$r").log" >&2
        failed=1
      else
        echo "train.sh: part $r done"
      fi
    else
      still+=("$r")
    fi
  done
  running=("${still[@]+"${still[@]}"}")
  while [ "$failed" = 0 ] && [ "$next" -lt "$PARTS" ] && [ "${#running[@]}" -lt "$PARALLEL" ]; do
    launch "$next"
    running+=("$next")
    next=$((next + 1))
  done
  if [ "${#running[@]}" = 0 ] && { [ "$next" -ge "$PARTS" ] || [ "$failed" = 1 ]; }; then
    break
  fi
  sleep 1
done
if [ "$failed" = 1 ]; then
  echo "train.sh: not merging; fix the failure and re-run the same command to resume" >&2
  exit 1
fi

# The parts are the model: no merged copy is written (`--merge-parts` writes one), and the evaluation
# reads one part at a time, so memory stays near one part's (tfxc.eval.parts).
"$PYTHON" -m tfxc.train --config "$CONFIG" --model-dir "$MODEL_DIR" --link-parts "${EXTRA[@]+"${EXTRA[@]}"}"
"$PYTHON" -m tfxc.evaluate --model-dir "$MODEL_DIR"
