#!/usr/bin/env bash
# Train all independent parts of a model (MACH's R repetitions), PARALLEL at a time, then evaluate them.
#
#   bash train.sh CONFIG [PARALLEL] [MODEL_DIR] [--gpus LIST] [--set section.key=value ...]
#
# --gpus 0,1 pins each part to one GPU of the list (its CUDA_VISIBLE_DEVICES), part slots taking the GPUs
# round-robin: PARALLEL parts run at a time, so PARALLEL 4 with --gpus 0,1 runs two parts on each GPU.
# Without PARALLEL, --gpus runs one part per GPU. Every part starts with TF_FORCE_GPU_ALLOW_GROWTH=true
# (unless the environment sets it), so parts sharing a GPU take memory as they need it instead of each
# reserving all of it at start-up. The other steps (part count, conversion, link, evaluation) and a head
# that trains as a whole see all the listed GPUs. Without --gpus every process sees the GPUs the
# environment shows, as before (TensorFlow puts each part on the first of them), so on a machine with
# several GPUs give --gpus. --gpus may stand anywhere on the line; `bash train.sh --help` prints this text.
#
# The head says how many parts it has (`python -m tfxc.train --num-parts`; a thin config at "preset":
# "best" has its ensemble's members as parts); a head that trains as a whole is simply trained and evaluated. Each part is an independent process (`python -m tfxc.train
# --part r`); MACH's repetitions never communicate (Medini et al., 2019). With tmux installed the parts
# run in windows of one tmux session (attach with `tmux attach -t <session>` to watch them); without
# tmux, or with TFXC_NO_TMUX=1, they run as background processes. Either way each writes
# MODEL_DIR/logs/part-NNN.log and its exit status to MODEL_DIR/logs/part-NNN.exit; a part whose shell
# is killed or whose tmux window is closed before that fails the run (it never waits for a status that
# cannot come). A part that already finished is skipped, an interrupted one resumes from its last
# checkpoint, so re-running the same command after a failure completes the job.
# Several machines sharing MODEL_DIR: run `python -m tfxc.train --config CONFIG --model-dir MODEL_DIR
# --part r` for disjoint sets of r on each, then `bash train.sh CONFIG 1 MODEL_DIR` anywhere (it finds
# them finished, links and evaluates them). Arguments after MODEL_DIR (e.g. --set overrides) go to every
# `tfxc.train` call, the part count and the link included.
set -euo pipefail

USAGE="usage: bash train.sh CONFIG [PARALLEL] [MODEL_DIR] [--gpus LIST] [--set section.key=value ...]"
usage_error() { echo "train.sh: $1" >&2; echo "$USAGE" >&2; exit 2; }

# --gpus (with its value) is taken out wherever it stands; the other words keep their positions.
GPU_LIST="" HAVE_GPUS=0 ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; exit 0 ;;
    --gpus) [ $# -ge 2 ] || usage_error "--gpus needs a value, e.g. --gpus 0,1"
            GPU_LIST=$2 HAVE_GPUS=1; shift 2 ;;
    --gpus=*) GPU_LIST=${1#--gpus=} HAVE_GPUS=1; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
GPUS=()
if [ "$HAVE_GPUS" = 1 ]; then
  # CUDA_VISIBLE_DEVICES would silently ignore a bad entry (and every one after it): refuse them here.
  if ! [[ "$GPU_LIST" =~ ^[0-9]+(,[0-9]+)*$ ]]; then
    usage_error "--gpus takes a comma-separated list of GPU indices such as 0,1 (got '$GPU_LIST')"
  fi
  IFS=, read -r -a GPUS <<< "$GPU_LIST"
  for ((i = 0; i < ${#GPUS[@]}; i++)); do
    for ((j = 0; j < i; j++)); do
      if [ "$((10#${GPUS[i]}))" = "$((10#${GPUS[j]}))" ]; then
        usage_error "--gpus lists GPU ${GPUS[i]} twice; PARALLEL sets how many parts share a GPU"
      fi
    done
  done
  # Every process started below sees the listed GPUs only; each part then narrows it to its own.
  export CUDA_VISIBLE_DEVICES=$GPU_LIST
fi
[ "${#ARGS[@]}" -ge 1 ] || usage_error "no CONFIG given"
CONFIG=${ARGS[0]}
PARALLEL=${ARGS[1]:-$(( ${#GPUS[@]} > 0 ? ${#GPUS[@]} : 2 ))}
MODEL_DIR=${ARGS[2]:-runs/$(basename "$CONFIG" .json)}
PYTHON=${PYTHON:-python}
EXTRA=("${ARGS[@]:3}")

PARTS=$("$PYTHON" -m tfxc.train --config "$CONFIG" "${EXTRA[@]+"${EXTRA[@]}"}" --num-parts)
if [ "$PARTS" -le 1 ]; then
  echo "train.sh: the head of $CONFIG trains as a whole; training it in one process into $MODEL_DIR"
  "$PYTHON" -m tfxc.train --config "$CONFIG" --model-dir "$MODEL_DIR" "${EXTRA[@]+"${EXTRA[@]}"}"
  exit 0
fi
echo "train.sh: $PARTS parts of $CONFIG, $PARALLEL at a time, into $MODEL_DIR"
if [ "${#GPUS[@]}" -gt 0 ]; then
  echo "train.sh: parts placed round-robin on GPUs $GPU_LIST (one GPU each)"
  if [ "$PARALLEL" -lt "${#GPUS[@]}" ]; then
    echo "train.sh: note: PARALLEL $PARALLEL is below the ${#GPUS[@]} GPUs listed; GPUs" \
         "${GPUS[*]:$PARALLEL} stay idle" >&2
  fi
fi

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
  # tmux reads '.' and ':' in a target as window and pane separators: keep the session name plain.
  name=$(basename "$MODEL_DIR")
  SESSION="tfxc-${name//[^A-Za-z0-9_-]/_}-$$"
fi

# The program each part runs, given its paths and command as arguments: never as text to re-parse, so a
# path may hold any character. The inner shell writes its pid (that of the `exec`ed python) to PIDFILE,
# and the python stays in the foreground of its window, where Ctrl-C reaches it.
# Arguments: PIDFILE LOG STATUS COMMAND...
PART_WRAPPER='pidfile=$1 log=$2 status=$3; shift 3
bash -c "echo \$\$ > \"\$0\"; exec \"\$@\"" "$pidfile" "$@" > "$log" 2>&1
echo $? > "$status"'

# A word quoted for any POSIX shell (tmux hands its command to the user's default shell).
shell_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

tag_of() { printf 'part-%03d' "$1"; }

# WRAPPER_PID[r]: the process that writes part r's .exit file (the tmux pane's, or the background shell's).
WRAPPER_PID=()
# SLOT_OF[r]: the slot (0 .. PARALLEL-1) part r runs in. With --gpus, slot s is pinned to GPU
# GPUS[s % number of GPUs]: a part that ends hands its GPU to the next part, so every GPU keeps its share.
SLOT_OF=()

free_slot() {
  local s r used
  for ((s = 0; s < PARALLEL; s++)); do
    used=0
    for r in "${running[@]+"${running[@]}"}"; do
      if [ "${SLOT_OF[$r]}" = "$s" ]; then used=1; break; fi
    done
    if [ "$used" = 0 ]; then echo "$s"; return; fi
  done
}

# Arguments: PART SLOT
launch() {
  local r=$1 slot=$2 tag log status pidfile word cmd="" where=""
  local gpu_env=(TF_FORCE_GPU_ALLOW_GROWTH="${TF_FORCE_GPU_ALLOW_GROWTH:-true}")
  if [ "${#GPUS[@]}" -gt 0 ]; then
    gpu_env+=(CUDA_VISIBLE_DEVICES="${GPUS[slot % ${#GPUS[@]}]}")
    where=", GPU ${GPUS[slot % ${#GPUS[@]}]}"
  fi
  SLOT_OF[$r]=$slot
  tag=$(tag_of "$r")
  log="$LOGS/$tag.log"; status="$LOGS/$tag.exit"; pidfile="$LOGS/$tag.pid"
  rm -f "$status" "$pidfile"
  # --skip-eval: one part alone ranks nothing worth reading; the whole model is evaluated at the end.
  local argv=(bash -c "$PART_WRAPPER" part-wrapper "$pidfile" "$log" "$status"
              env "TF_NUM_INTRAOP_THREADS=$THREADS" TF_NUM_INTEROP_THREADS=1 "${gpu_env[@]}"
              "$PYTHON" -m tfxc.train --config "$CONFIG" --model-dir "$MODEL_DIR" --part "$r" --skip-eval
              "${EXTRA[@]+"${EXTRA[@]}"}")
  if [ "$USE_TMUX" = 1 ]; then
    for word in "${argv[@]}"; do cmd="$cmd $(shell_quote "$word")"; done
    # The session ends with its last window (a user may close it at any moment), so a new window
    # that finds no session starts the session again instead of failing the run.
    if ! WRAPPER_PID[$r]=$(tmux new-window -d -P -F '#{pane_pid}' -t "=$SESSION:" -n "$tag" "$cmd" 2>/dev/null)
    then
      WRAPPER_PID[$r]=$(tmux new-session -d -P -F '#{pane_pid}' -s "$SESSION" -n "$tag" "$cmd")
      echo "train.sh: tmux session $SESSION (tmux attach -t $SESSION)"
    fi
  else
    "${argv[@]}" &
    WRAPPER_PID[$r]=$!
  fi
  echo "train.sh: started part $r (log $log$where)"
}

finished() { [ -s "$LOGS/$(tag_of "$1").exit" ]; }

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# True when part r can no longer write its .exit file: its wrapper is gone (killed, or its tmux window
# closed) and so is its python. A python that outlives its wrapper is waited for, so that a re-run never
# trains the part twice at once.
gone() {
  local r=$1 pid=""
  alive "${WRAPPER_PID[$r]:-}" && return 1
  pid=$(cat "$LOGS/$(tag_of "$r").pid" 2>/dev/null || true)
  ! alive "$pid"
}

next=0 running=() failed=0
while :; do
  still=()
  for r in "${running[@]+"${running[@]}"}"; do
    log="$LOGS/$(tag_of "$r").log"
    if finished "$r"; then
      code=$(cat "$LOGS/$(tag_of "$r").exit")
      if [ "$code" != 0 ]; then
        echo "train.sh: part $r failed (exit $code); see $log" >&2
        failed=1
      else
        echo "train.sh: part $r done"
      fi
    elif gone "$r" && ! finished "$r"; then  # finished again: the wrapper may have written it since
      echo "train.sh: part $r ended without an exit status (its shell was killed or its tmux window" \
           "closed); see $log" >&2
      failed=1
    else
      still+=("$r")
    fi
  done
  running=("${still[@]+"${still[@]}"}")
  while [ "$failed" = 0 ] && [ "$next" -lt "$PARTS" ] && [ "${#running[@]}" -lt "$PARALLEL" ]; do
    launch "$next" "$(free_slot)"
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
