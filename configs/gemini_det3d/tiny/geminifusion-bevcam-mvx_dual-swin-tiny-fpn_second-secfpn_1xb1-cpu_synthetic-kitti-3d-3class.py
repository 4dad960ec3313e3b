# The tiny GeminiFusion config with the camera's per-point class scores also laid on the 3D
# head's BEV map (BEVCameraEvidence, late fusion as CLOCs; detectors/bev_camera_evidence.py).
_base_ = ['./geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py']

point_cloud_range = [0, -25.6, -3, 51.2, 25.6, 1]
model = dict(
    bev_camera_evidence=dict(type='BEVCameraEvidence', point_cloud_range=point_cloud_range,
                             num_classes=3, pool_size=5),
    # SECFPN's 2 x 64 channels + 2 K + 2 evidence channels
    pts_bbox_head=dict(in_channels=128 + 8, feat_channels=128 + 8))
