from .gemini_mvx_faster_rcnn import GeminiMVXFasterRCNN
from .ground_contact import GroundContactError, GroundContactRefiner

__all__ = ['GeminiMVXFasterRCNN', 'GroundContactError', 'GroundContactRefiner']
