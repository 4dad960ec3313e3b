from .bev_height_map import BEVHeightMap
from .empty_scan_safe_mvx import EmptyScanSafeMVXFasterRCNN
from .ground_contact import GroundContactError, GroundContactRefiner
from .ground_truth_oracle import GroundTruthOracle

__all__ = ['BEVHeightMap', 'EmptyScanSafeMVXFasterRCNN', 'GroundContactError', 'GroundContactRefiner',
           'GroundTruthOracle']
