#!/usr/bin/env bash
# Distributed training with torchrun (mmengine's launcher does the rest).
#   tools/dist_train.sh CONFIG NPROC [train.py args...]
# One machine: NPROC processes (one per GPU; on a CPU machine, gloo processes).
# Several machines: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host0 PORT=29500 tools/dist_train.sh CONFIG 8
set -euo pipefail
CONFIG=$1
NPROC=$2
shift 2
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PY" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
  --nproc_per_node="$NPROC" \
  tools/train.py "$CONFIG" --launcher pytorch "$@"
