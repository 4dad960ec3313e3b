#!/usr/bin/env bash
# Idempotent set-up of gemini_det3d's CUDA flavour on a machine with an NVIDIA GPU
# (the README's "Installation / CUDA machines" commands, as one script).
#
#   bash tools/setup_cuda_env.sh [--print-python FILE]
#
# - the virtual environment is $GEMINI_VENV (default .venv), made with --system-site-packages
#   so that a CUDA build of torch already on the machine is used as it is;
# - torch: kept when it sees the GPU; installed from $TORCH_INDEX_URL (default: PyTorch's
#   cu121 wheels, torch 2.1.2 as in the README) only when there is none; a CPU-only torch
#   stops the script (replacing it is the user's call);
# - requirements/cuda.txt (spconv-cu120, ...), requirements/tests.txt, requirements/nodeps.txt
#   (mmdet3d with --no-deps), the CPU `spconv` package removed (never both);
# - mmcv 2.1.0 built with its CUDA ops (FORCE_CUDA=1, no pip cache: a cached CPU-only wheel
#   of the same version would otherwise be reused), unless mmcv's ops already report CUDA.
# Offline machines: PIP_NO_INDEX=1 PIP_FIND_LINKS=/path/to/wheels make every pip step read
# wheels from that folder. A second run takes seconds. Without a GPU it exits 2 at once.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${GEMINI_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
PRINT_PYTHON=""
if [ "${1:-}" = "--print-python" ]; then PRINT_PYTHON=${2:?--print-python needs a file}; fi
stamp() { printf '[setup-cuda %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  echo "setup_cuda_env.sh: needs a CUDA machine (nvidia-smi finds no NVIDIA GPU); nothing installed" >&2
  exit 2
fi

if [ ! -x "$VENV/bin/python" ]; then
  stamp "creating $VENV (with the system's site-packages, for an installed CUDA torch)"
  $PY -m venv --system-site-packages "$VENV"
  # --system-site-packages sees the base interpreter's packages only; when $PY is itself a
  # virtual environment (GPU images often ship torch in one) its packages are added behind
  # the new environment's own, so what is installed here still comes first.
  parent=$($PY -c "import sys, sysconfig; print(sysconfig.get_paths()['purelib'] if sys.prefix != sys.base_prefix else '')")
  if [ -n "$parent" ]; then
    "$VENV/bin/python" -c "import sys, sysconfig; open(sysconfig.get_paths()['purelib'] + '/_gemini_parent_env.pth', 'w').write(sys.argv[1] + '\\n')" "$parent"
  fi
fi
VPY="$VENV/bin/python"
PIP="$VPY -m pip --disable-pip-version-check"
STAMP_FILE="$VENV/.gemini_cuda_setup_ok"
finish() {
  if [ -n "$PRINT_PYTHON" ]; then printf '%s\n' "$VPY" > "$PRINT_PYTHON"; fi
  stamp "done ($VENV)"
}

# --- torch with CUDA
if ! "$VPY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  if "$VPY" -c "import torch" 2>/dev/null; then
    echo "setup_cuda_env.sh: $VENV has torch $("$VPY" -c 'import torch; print(torch.__version__)') without CUDA; install a CUDA build of torch there (README, Installation) or set GEMINI_VENV to another environment" >&2
    exit 2
  fi
  stamp "installing torch 2.1.2 (CUDA 12.1) from ${TORCH_INDEX_URL:-the PyTorch cu121 index}"
  $PIP install -q torch==2.1.2 --index-url "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cu121}"
fi

mmcv_has_cuda_ops() {
  "$VPY" -c "from mmcv.ops import get_compiling_cuda_version as v, dynamic_scatter; import sys; sys.exit(0 if v() not in ('', 'not available') else 1)" >/dev/null 2>&1
}

# Fast path: same requirements as last time and everything imports with CUDA ops.
if [ -f "$STAMP_FILE" ] && cmp -s "$STAMP_FILE" <(cat requirements/*.txt setup.py) \
   && mmcv_has_cuda_ops \
   && "$VPY" -c "import spconv.pytorch, mmdet3d, numba, gemini_det3d" >/dev/null 2>&1; then
  stamp "environment up to date"
  finish
  exit 0
fi

if $PIP show spconv >/dev/null 2>&1; then
  stamp "removing the CPU spconv package (spconv-cu120 replaces it)"
  $PIP uninstall -y -q spconv
fi
stamp "pip install: requirements/cuda.txt, tests.txt, nodeps.txt (--no-deps)"
$PIP install -q -r requirements/cuda.txt -r requirements/tests.txt
$PIP install -q --no-deps -r requirements/nodeps.txt

if ! mmcv_has_cuda_ops; then
  stamp "building mmcv 2.1.0 with CUDA ops from source (once; 10-30 min)"
  $PIP install -q "setuptools<70" wheel
  MMCV_WITH_OPS=1 FORCE_CUDA=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    $PIP install -q --no-build-isolation --no-cache-dir --force-reinstall --no-deps \
    -r requirements/mmcv.txt
  $PIP install -q "setuptools==80.9.0"
fi

# Several deps silently upgrade numpy to 2.x; pin it last (as tools/setup_env.sh does).
$PIP install -q "numpy>=1.26,<2"
$PIP install -q --no-deps -e .

"$VPY" -c "import mmcv.ops, mmdet3d, spconv.pytorch, gemini_det3d; print('imports ok')"
if ! mmcv_has_cuda_ops; then
  echo "setup_cuda_env.sh: mmcv's ops were built without CUDA (is nvcc on PATH / CUDA_HOME set?)" >&2
  exit 2
fi
cat requirements/*.txt setup.py > "$STAMP_FILE"
finish
