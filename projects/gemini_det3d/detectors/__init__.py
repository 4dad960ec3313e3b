from .ground_truth_oracle import GroundTruthOracle

__all__ = ['GroundTruthOracle']
