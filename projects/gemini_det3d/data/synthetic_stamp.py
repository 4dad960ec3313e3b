"""What made a synthetic data set: the generator's settings and a fingerprint of its code.

``make_synthetic_kitti`` writes ``synthetic_kitti.json`` into the root it fills; ``tools/demo.py``
reuses a converted set only when that stamp says it was made by this code with the demo's
settings. Without it, a set made by an older world (other objects, other camera) would be
trained and scored silently, and its AP compared with the current one.

The fingerprint is a SHA-256 over the source of every module of this package (the world, the
sensors, the file writers): any change to them counts as another generator, since frames of
the same seed may then differ.
"""
import hashlib
import json
from pathlib import Path
from typing import Optional

STAMP_FILE = 'synthetic_kitti.json'
_PACKAGE = Path(__file__).resolve().parent


def generator_fingerprint() -> str:
    """Hex SHA-256 of the package's ``*.py`` sources, in name order (16 characters)."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.glob('*.py')):
        digest.update(path.name.encode() + b'\0' + path.read_bytes() + b'\0')
    return digest.hexdigest()[:16]


def write_stamp(root, **settings) -> Path:
    """``root/synthetic_kitti.json``: ``settings`` (seed, frame counts) and the fingerprint."""
    path = Path(root) / STAMP_FILE
    path.write_text(json.dumps(dict(settings, generator=generator_fingerprint()), indent=1,
                               sort_keys=True))
    return path


def stamp_problem(root, **settings) -> Optional[str]:
    """None when ``root`` was made by this generator with ``settings``; else why not, in words."""
    path = Path(root) / STAMP_FILE
    if not path.is_file():
        return f'{path} is missing: the set was made before stamps or by another tool'
    try:
        stamp = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return f'{path} is unreadable ({err})'
    if stamp.get('generator') != generator_fingerprint():
        return (f'it was made by another version of the generator ({stamp.get("generator")}, '
                f'this code is {generator_fingerprint()})')
    differing = [f'{k} {stamp.get(k)} (wanted {v})' for k, v in settings.items()
                 if stamp.get(k) != v]
    if differing:
        return 'it was made with other settings: ' + ', '.join(differing)
    return None
