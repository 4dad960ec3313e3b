from .gemini_mvx_faster_rcnn import GeminiMVXFasterRCNN
from .ground_contact import GroundContactError, GroundContactRefiner
from .ground_truth_oracle import GroundTruthOracle

__all__ = ['GeminiMVXFasterRCNN', 'GroundContactError', 'GroundContactRefiner',
           'GroundTruthOracle']
