#!/usr/bin/env bash
# Training with several processes: torchrun starts them, mmengine's launcher (train.py
# --launcher pytorch) joins them into one DistributedDataParallel job. batch_size in the
# config is per process: 8 processes x batch 2 = a total batch of 16.
#   tools/dist_train.sh CONFIG NPROC [train.py args: --work-dir DIR --cfg-options k=v ...]
# One machine: NPROC processes, one per GPU; without CUDA, CPU processes over gloo.
#   A free port is found by torchrun, unless PORT is set.
# Several machines: the same command on each, with
#   NNODES=2 NODE_RANK=0|1 MASTER_ADDR=<host of rank 0> PORT=29500 tools/dist_train.sh CONFIG 8
# Environment: PYTHON (default .venv/bin/python), OMP_NUM_THREADS (default: cores / NPROC).
set -euo pipefail
usage="usage: tools/dist_train.sh CONFIG NPROC [train.py args...]"
if [ $# -lt 2 ]; then echo "error: $usage" >&2; exit 2; fi
CONFIG=$1
NPROC=$2
shift 2
if ! [[ $NPROC =~ ^[1-9][0-9]*$ ]]; then
  echo "error: NPROC must be a positive number of processes, got '$NPROC' ($usage)" >&2; exit 2
fi
if [ ! -f "$CONFIG" ]; then echo "error: $CONFIG: config file not found" >&2; exit 2; fi
NNODES=${NNODES:-1}
# no cd: CONFIG, --work-dir and the config's data paths mean what they do for tools/train.py
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$( [ -x "$REPO/.venv/bin/python" ] && echo "$REPO/.venv/bin/python" || echo python3 )}
# torchrun would pin every process to 1 thread; share this machine's cores instead
CORES=$(nproc 2>/dev/null || echo 1)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( CORES / NPROC > 0 ? CORES / NPROC : 1 ))}
if [ "$NNODES" = 1 ] && [ -z "${PORT:-}" ]; then
  RENDEZVOUS=(--standalone)   # one machine: torchrun picks a free port
else
  RENDEZVOUS=(--nnodes="$NNODES" --node_rank="${NODE_RANK:-0}"
              --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}")
fi
# torchrun, minus its launcher traceback when a process fails: the processes have said
# what went wrong (train.py: one "error: ..." line); exit with the first failure's code
LAUNCH='
import sys
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import main
try:
    main(sys.argv[1:])
except ChildFailedError as exc:
    rank, failure = exc.get_first_failure()
    print(f"error: training process of rank {rank} failed (exit code {failure.exitcode})",
          file=sys.stderr)
    sys.exit(failure.exitcode if failure.exitcode > 0 else 1)
'
exec "$PY" -c "$LAUNCH" "${RENDEZVOUS[@]}" --nproc_per_node="$NPROC" \
  "$REPO/tools/train.py" "$CONFIG" --launcher pytorch "$@"
