#!/usr/bin/env bash
# Train the members of a run made of runs (MACH's R repetitions, the recipe's best point's members, k-fold's folds:
# tfxc.runs), PARALLEL at a time, then combine and evaluate them.
#
#   bash train.sh CONFIG [PARALLEL] [MODEL_DIR] [--gpus LIST] [--set section.key=value ...]
#   bash train.sh CONFIG [--parallel N] [--model-dir DIR] [--gpus LIST] [--set section.key=value ...]
#
# PARALLEL (or --parallel N) is how many parts train at a time, a positive integer (default: one per
# --gpus GPU, else 2); MODEL_DIR (or --model-dir DIR) defaults to runs/<config name>. Give each at most
# once, as a word or as an option. PARALLEL and MODEL_DIR are the words after CONFIG that do not start
# with "--"; the first word that does starts the arguments passed on to tfxc.train.
#
# train.sh holds MODEL_DIR/logs/.lock while it runs: a second train.sh on the same MODEL_DIR is refused
# at once (naming the holder) and touches nothing, and so is one that finds MODEL_DIR held by a tfxc.train
# run, or a part of an earlier train.sh still training (a tmux window left open).
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
# The config's run plan says how many members train apart (`python -m tfxc.train --num-parts`, `tfxc.runs`:
# a head's parts, the best point's members, k-fold's folds); a run that trains as a whole is simply trained
# and evaluated. Each member is an independent process (`python -m tfxc.train --part r`); MACH's repetitions
# never communicate (Medini et al., 2019). With tmux installed the parts
# run in windows of one tmux session (attach with `tmux attach -t <session>` to watch them); without
# tmux, or with TFXC_NO_TMUX=1, they run as background processes. Either way each writes
# MODEL_DIR/logs/part-NNN.log and its exit status to MODEL_DIR/logs/part-NNN.exit; a part whose shell
# is killed or whose tmux window is closed before that fails the run (it never waits for a status that
# cannot come). A part that already finished is skipped, an interrupted one resumes from its last
# checkpoint, so re-running the same command after a failure completes the job.
# Several machines sharing MODEL_DIR: run `python -m tfxc.train --config CONFIG --model-dir MODEL_DIR
# --part r` for disjoint sets of r on each, then `bash train.sh CONFIG 1 MODEL_DIR` anywhere (it finds
# them finished, links and evaluates them). The arguments from the first word starting with "--" (other than
# the options above; e.g. --set overrides) go to every `tfxc.train` call, the part count and the link included.
set -euo pipefail

# One line, as every tfxc command refuses its input.
usage_error() {
  echo "train.sh: error: $1 (usage: bash train.sh CONFIG [PARALLEL] [MODEL_DIR] [options]; see --help)" >&2
  exit 2
}
refuse() { echo "train.sh: error: $*" >&2; exit 2; }

# --gpus, --parallel and --model-dir (with their values) are taken out wherever they stand; the other words
# keep their positions.
GPU_LIST="" HAVE_GPUS=0 OPT_PARALLEL="" HAVE_PARALLEL=0 OPT_MODEL_DIR="" HAVE_MODEL_DIR=0 ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; exit 0 ;;
    --gpus|--parallel|--model-dir)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case "$1" in
        --gpus) GPU_LIST=$2 HAVE_GPUS=1 ;;
        --parallel) [ "$HAVE_PARALLEL" = 0 ] || usage_error "--parallel is given twice"
                    OPT_PARALLEL=$2 HAVE_PARALLEL=1 ;;
        --model-dir) [ "$HAVE_MODEL_DIR" = 0 ] || usage_error "--model-dir is given twice"
                     OPT_MODEL_DIR=$2 HAVE_MODEL_DIR=1 ;;
      esac
      shift 2 ;;
    --gpus=*) GPU_LIST=${1#--gpus=} HAVE_GPUS=1; shift ;;
    --parallel=*) [ "$HAVE_PARALLEL" = 0 ] || usage_error "--parallel is given twice"
                  OPT_PARALLEL=${1#--parallel=} HAVE_PARALLEL=1; shift ;;
    --model-dir=*) [ "$HAVE_MODEL_DIR" = 0 ] || usage_error "--model-dir is given twice"
                   OPT_MODEL_DIR=${1#--model-dir=} HAVE_MODEL_DIR=1; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
GPUS=()
if [ "$HAVE_GPUS" = 1 ]; then
  # CUDA_VISIBLE_DEVICES would silently ignore a bad entry (and every one after it): refuse them here. Nine
  # digits at most, so that an index cannot overflow the shell's arithmetic below.
  if ! [[ "$GPU_LIST" =~ ^[0-9]{1,9}(,[0-9]{1,9})*$ ]]; then
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
# Up to two positional words after CONFIG (PARALLEL, then MODEL_DIR); the first word starting with "--"
# begins tfxc.train's arguments, so `train.sh CONFIG --set ...` does not read --set as PARALLEL.
POSITIONAL=()
n=1
while [ "$n" -lt "${#ARGS[@]}" ] && [ "${#POSITIONAL[@]}" -lt 2 ] && [[ "${ARGS[n]}" != --* ]]; do
  POSITIONAL+=("${ARGS[n]}"); n=$((n + 1))
done
EXTRA=("${ARGS[@]:n}")
if [ "$HAVE_PARALLEL" = 1 ] && [ -n "${POSITIONAL[0]:-}" ] && [ "${POSITIONAL[0]}" != "$OPT_PARALLEL" ]; then
  usage_error "PARALLEL is given twice: '${POSITIONAL[0]}' and --parallel '$OPT_PARALLEL'"
fi
if [ "$HAVE_MODEL_DIR" = 1 ] && [ -n "${POSITIONAL[1]:-}" ] && [ "${POSITIONAL[1]}" != "$OPT_MODEL_DIR" ]; then
  usage_error "MODEL_DIR is given twice: '${POSITIONAL[1]}' and --model-dir '$OPT_MODEL_DIR'"
fi
if [ "$HAVE_PARALLEL" = 1 ]; then
  PARALLEL=$OPT_PARALLEL
elif [ -n "${POSITIONAL[0]:-}" ]; then  # an empty word takes the default, as it always did
  PARALLEL=${POSITIONAL[0]}
else
  PARALLEL=$(( ${#GPUS[@]} > 0 ? ${#GPUS[@]} : 2 ))
fi
# The scheduler divides by PARALLEL and loops until PARALLEL slots are full: anything but a positive integer
# would divide by zero or never end. Leading zeros are read as decimal; nine digits at most.
if ! [[ "$PARALLEL" =~ ^0*[1-9][0-9]{0,8}$ ]]; then
  usage_error "PARALLEL (--parallel) must be a positive integer such as 2, at most 9 digits (got '$PARALLEL')"
fi
PARALLEL=$((10#$PARALLEL))
if [ "$HAVE_MODEL_DIR" = 1 ]; then
  MODEL_DIR=$OPT_MODEL_DIR
elif [ -n "${POSITIONAL[1]:-}" ]; then
  MODEL_DIR=${POSITIONAL[1]}
else
  MODEL_DIR=runs/$(basename "$CONFIG" .json)
fi
[ -n "$MODEL_DIR" ] || usage_error "MODEL_DIR (--model-dir) is empty"
PYTHON=${PYTHON:-python}
LOGS="$MODEL_DIR/logs"

# The directory's lock, taken before anything is written: another train.sh on MODEL_DIR owns logs/ (its
# parts' .log, .pid and .exit files) and its parts, and is refused here, touching none of them. The lock is
# train.sh's own file (the holder's name in it, as tfxc.utils.locks writes it), not MODEL_DIR/.lock: the
# link step (`tfxc.train --link-parts`) and a head trained whole take that one themselves, and would refuse
# themselves if their own train.sh held it. fd 9 holds the lock; every command below closes it (9>&-), so
# that no child (above all a tmux server, which outlives everything) keeps the lock after train.sh ends.
mkdir -p "$LOGS" || refuse "cannot create $LOGS"
LOCK_FILE="$LOGS/.lock"
exec 9<>"$LOCK_FILE" || refuse "cannot open $LOCK_FILE"
if ! flock -n 9; then
  holder=""
  for _ in 1 2 3 4 5 6 7 8 9 10; do  # the holder writes its name just after taking the lock
    holder=$(head -n 1 "$LOCK_FILE" 2>/dev/null || true)
    [ -n "$holder" ] && break
    sleep 0.1
  done
  refuse "$MODEL_DIR is in use by ${holder:-another train.sh run}; wait for it to finish, or give another MODEL_DIR"
fi
printf 'a train.sh run (pid %s on %s, since %s)\n' "$$" "$(hostname 2>/dev/null || echo localhost)" \
  "$(date '+%Y-%m-%d %H:%M:%S')" > "$LOCK_FILE"
trap ': > "$LOCK_FILE"' EXIT  # the name goes with the lock (released when fd 9 closes at exit)
# A tfxc.train run writing MODEL_DIR itself (a head trained whole, a link or merge started by hand) would
# refuse this run's last step: refuse it now instead, naming it. The probe only looks; it writes nothing.
if [ -s "$MODEL_DIR/.lock" ] && ! flock -n "$MODEL_DIR/.lock" true 9>&-; then
  refuse "$MODEL_DIR is in use by $(head -n 1 "$MODEL_DIR/.lock" 2>/dev/null || echo 'a tfxc.train run');" \
         "wait for it to finish, or give another MODEL_DIR"
fi

echo "train.sh: training $CONFIG into $MODEL_DIR, $PARALLEL part(s) at a time, logs in $LOGS;" \
     "counting its parts (python -m tfxc.train --num-parts)"
PARTS=$("$PYTHON" -m tfxc.train --config "$CONFIG" "${EXTRA[@]+"${EXTRA[@]}"}" --num-parts 9>&-)
if [ "$PARTS" -le 1 ]; then
  echo "train.sh: $CONFIG trains as a whole; training it in one process into $MODEL_DIR"
  "$PYTHON" -m tfxc.train --config "$CONFIG" --model-dir "$MODEL_DIR" "${EXTRA[@]+"${EXTRA[@]}"}" 9>&-
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
echo "train.sh: each part logs to $LOGS/part-NNN.log (follow them with: tail -F $LOGS/part-*.log)"

# A part an earlier train.sh started may still train (its tmux window outlives that train.sh): starting it
# again would truncate its log and remove its pid file under it. Refuse before anything is written.
for ((r = 0; r < PARTS; r++)); do
  pid=$(cat "$LOGS/$(printf 'part-%03d' "$r").pid" 2>/dev/null || true)
  if [[ "$pid" =~ ^[0-9]+$ ]] && tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -q 'tfxc\.train'; then
    refuse "part $r of $MODEL_DIR is still training (pid $pid, started by an earlier train.sh; see" \
           "$LOGS/$(printf 'part-%03d' "$r").log); wait for it to finish, or stop it, then re-run"
  fi
done

# Convert the data once, before the parts start reading it.
echo "train.sh: converting the data (python -m tfxc.convert)"
"$PYTHON" -m tfxc.convert --config "$CONFIG" "${EXTRA[@]+"${EXTRA[@]}"}" >/dev/null 9>&-

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
    if ! WRAPPER_PID[$r]=$(tmux new-window -d -P -F '#{pane_pid}' -t "=$SESSION:" -n "$tag" "$cmd" 2>/dev/null 9>&-)
    then
      WRAPPER_PID[$r]=$(tmux new-session -d -P -F '#{pane_pid}' -s "$SESSION" -n "$tag" "$cmd" 9>&-)
      echo "train.sh: tmux session $SESSION (tmux attach -t $SESSION)"
    fi
  else
    "${argv[@]}" 9>&- &
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
"$PYTHON" -m tfxc.train --config "$CONFIG" --model-dir "$MODEL_DIR" --link-parts "${EXTRA[@]+"${EXTRA[@]}"}" 9>&-
"$PYTHON" -m tfxc.evaluate --model-dir "$MODEL_DIR" 9>&-
