#!/usr/bin/env bash
# One-shot, idempotent set-up of gemini_det3d on a fresh Debian 12 / Python 3.11 CPU machine.
#
#   bash tools/setup_env.sh            # creates .venv and installs everything (CPU flavour)
#
# Every step first checks whether its result is already there, so a second run takes seconds.
# Only package registries are used (pip by package name, apt by package name).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${GEMINI_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
stamp() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# --- Debian packages that open3d-cpu's import and its offscreen (Vulkan/llvmpipe) renderer need.
DEB_PKGS="libusb-1.0-0 libgomp1 libvulkan1 mesa-vulkan-drivers"
missing=""
for p in $DEB_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    stamp "apt-get install$missing"
    (apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1) || \
      (apt-get update -qq >/dev/null 2>&1 && \
       apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1) || \
      stamp "WARNING: apt-get could not install$missing (Open3D pictures fall back to OpenCV)"
  else
    stamp "WARNING: missing Debian packages:$missing (Open3D rendering needs them; install as root)"
  fi
fi

# --- virtual environment
if [ ! -x "$VENV/bin/python" ]; then
  stamp "creating $VENV"
  $PY -m venv "$VENV"
fi
VPY="$VENV/bin/python"
PIP="$VPY -m pip --disable-pip-version-check"

# Fast path: everything importable and the package installed -> nothing to do.
if [ -f "$VENV/.gemini_setup_ok" ] && [ "$VENV/.gemini_setup_ok" -nt requirements ] \
   && cmp -s "$VENV/.gemini_setup_ok" <(cat requirements/*.txt setup.py) \
   && "$VPY" -c "import mmcv.ops, mmdet3d, spconv, gemini_det3d" >/dev/null 2>&1; then
  stamp "environment up to date ($VENV)"
  exit 0
fi

stamp "pip install: torch (CPU), runtime requirements, spconv, open3d-cpu"
$PIP install -q -r requirements/cpu.txt -r requirements/tests.txt
$PIP install -q --no-deps -r requirements/nodeps.txt

# mmcv 2.1.0 with ops: no prebuilt CPU wheel, so build it once (about 11 minutes on 2 cores);
# pip caches the wheel, and the import check below skips the step entirely once it is installed.
if ! "$VPY" -c "import mmcv.ops" >/dev/null 2>&1; then
  stamp "building mmcv 2.1.0 with ops from source (about 11 min on 2 cores, once)"
  # mmcv's setup.py imports pkg_resources (gone from new setuptools) while torch 2.13 declares
  # setuptools>=77: build with an old setuptools, then put torch's back (80.9 still ships
  # pkg_resources, which mmengine needs for `mmdet3d::` config bases).
  $PIP install -q "setuptools<70" wheel
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    $PIP install -q --no-build-isolation -r requirements/mmcv.txt
  $PIP install -q "setuptools==80.9.0"
fi

# Several deps silently upgrade numpy to 2.x; pin it last.
$PIP install -q "numpy>=1.26,<2"
$PIP install -q --no-deps -e .

"$VPY" -c "import mmcv.ops, mmdet3d, spconv, open3d, gemini_det3d; print('imports ok')"
cat requirements/*.txt setup.py > "$VENV/.gemini_setup_ok"
stamp "done ($VENV)"
