"""The one synthetic KITTI-layout set the whole suite shares (see ``tests/conftest.py``).

24 val frames because KITTI's AP samples 41 recall points: the metric-wiring test needs at
least ~41 boxes of every class and difficulty in the split it evaluates to expect 100 AP for
perfect predictions. 4 train frames keep the epoch-based training tests short.
"""
SEED = 7
NUM_TRAIN, NUM_VAL, NUM_TEST = 4, 24, 1
