"""The one synthetic KITTI-layout set the whole suite shares (see ``tests/conftest.py``).

4 train frames keep the epoch-based training tests short; 24 val frames give the evaluation
tests every class (the world labels at KITTI's rates: about 5 cars, 1 pedestrian and 0.4
cyclists a frame). The metric-wiring test, which needs 41 boxes of every class and difficulty,
makes its own larger val split.
"""
SEED = 7
NUM_TRAIN, NUM_VAL, NUM_TEST = 4, 24, 1
