from setuptools import find_packages, setup

setup(
    name='gemini_det3d',
    version='0.1.0',
    description='GeminiFusion LiDAR-camera 3D detection for KITTI, as an mmdet3d plugin',
    package_dir={'': 'projects'},
    packages=find_packages('projects'),
    python_requires='>=3.9',
)
