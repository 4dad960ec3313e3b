from .bev_camera_evidence import BEVCameraEvidence
from .gemini_mvx_faster_rcnn import GeminiMVXFasterRCNN
from .ground_contact import GroundContactError, GroundContactRefiner
from .point_image_semantic_loss import PointImageSemanticLoss, points_in_boxes_label

__all__ = ['BEVCameraEvidence', 'GeminiMVXFasterRCNN', 'GroundContactError', 'GroundContactRefiner',
           'PointImageSemanticLoss', 'points_in_boxes_label']
