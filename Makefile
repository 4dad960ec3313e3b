# gemini_det3d: every target sets the machine up first (idempotent; seconds when already done).
PY := .venv/bin/python

.PHONY: setup test test-fast demo bench bench-e2e

# The README's main job: synthetic KITTI -> create_data -> train tiny GeminiFusion -> KITTI AP -> PNGs
demo: setup
	$(PY) tools/demo.py

setup:
	bash tools/setup_env.sh

# The README's test command. Fails when any test fails or when no test ran (pytest exit 5).
test: setup
	$(PY) -m pytest tests -q -ra --durations=15

test-fast: setup
	$(PY) -m pytest tests -q -ra -m "not slow"

bench: setup
	$(PY) benchmarks/fusion_complexity.py --quick
	$(PY) benchmarks/projection.py

# whole detectors at KITTI input size: per-frame latency and peak memory, ratios (about 30 min on CPU)
bench-e2e: setup
	$(PY) benchmarks/end_to_end.py

# CUDA machines: set up the CUDA stack (tools/setup_cuda_env.sh) and print one report of the
# CUDA path (ops vs CPU, KITTI IoU, training steps, latency) -> work_dirs/gpu_check/report.md.
# Without a GPU it says so in one line and exits 2 before installing anything.
.PHONY: gpu-check
gpu-check:
	python3 tools/gpu_check/run.py
