"""The one synthetic KITTI-layout set the whole suite shares (see ``tests/conftest.py``).

4 train frames keep the epoch-based training tests short; 24 val frames give the evaluation
tests every class (the world labels at KITTI's rates: about 5 cars, 1 pedestrian and 0.4
cyclists a frame). The metric-wiring test, which needs 41 boxes of every class and difficulty,
makes its own larger val split. Seed 4: at those rates a 4-frame train split can lack a class
(seed 7 had no cyclist) or start with a nearly empty frame, which the tests that read "the first
frames" or GT-sample every class need; ``conftest`` checks these properties when it generates.
"""
SEED = 4
NUM_TRAIN, NUM_VAL, NUM_TEST = 4, 24, 1
