#!/usr/bin/env bash
# Training on a Slurm cluster: srun starts the processes on the allocated nodes and
# mmengine's slurm launcher (train.py --launcher slurm) joins them: rank, world size and
# local rank come from SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID, the master address is
# the first host of SLURM_NODELIST, the port is PORT (default 29500).
#   [GPUS=16 GPUS_PER_NODE=8 CPUS_PER_TASK=5 SRUN_ARGS=...] \
#     tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# GPUS is the number of processes in all, GPUS_PER_NODE per node (one per GPU). On
# CPU-only nodes set GRES= (empty): the processes then talk over gloo.
set -euo pipefail
usage="usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]"
if [ $# -lt 4 ]; then echo "error: $usage" >&2; exit 2; fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
if [ ! -f "$CONFIG" ]; then echo "error: $CONFIG: config file not found" >&2; exit 2; fi
NPROC=${GPUS:-8}
NPROC_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
GRES=${GRES-gpu:$NPROC_PER_NODE}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$( [ -x "$REPO/.venv/bin/python" ] && echo "$REPO/.venv/bin/python" || echo python3 )}
export MASTER_PORT=${PORT:-${MASTER_PORT:-29500}}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$CPUS_PER_TASK}
# shellcheck disable=SC2086  # SRUN_ARGS is a list of options
exec srun -p "$PARTITION" --job-name="$JOB_NAME" ${GRES:+--gres="$GRES"} \
  --ntasks="$NPROC" --ntasks-per-node="$NPROC_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" \
  --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
  "$PY" -u "$REPO/tools/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher slurm "$@"
