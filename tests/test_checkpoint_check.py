"""The checkpoint-fit report (mmengine's strict load, one line) names the keys a key-by-key,
shape-by-shape comparison of the two state dicts finds."""
import re

import pytest
import torch
from torch import nn

from gemini_det3d.utils import checkpoint_check
from gemini_det3d.utils.checkpoint_check import CheckpointMismatchError, check_checkpoint_fits


class Ours(nn.Module):

    def __init__(self, width=8, extra=True, other=False):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3)
        self.norm = nn.BatchNorm2d(width)
        self.head = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
        if extra:  # a whole part the other model lacks, BatchNorm counter included
            self.neck = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        if other:
            self.other = nn.Linear(2, 2)
            self.head.add_module('3', nn.Linear(2, 2))  # nested: found inside ``head``


def _report(model, state_dict, path='m.pth'):
    """``{kind: 'N kind: k1, k2, ...'}`` of the one-line error."""
    with pytest.raises(CheckpointMismatchError) as info:
        check_checkpoint_fits(model, {'state_dict': state_dict}, path, 'cfg.py')
    message = str(info.value)
    assert '\n' not in message
    prefix = f'{path}: weights of another model, they do not fit the model of cfg.py ' \
             f'({len(model.state_dict())} tensors): '
    assert message.startswith(prefix), message
    return {re.match(r'\d+ ([a-z ]+):', part).group(1): part
            for part in message[len(prefix):].split('; ')}


def _keys(part):
    """The keys of a report part that lists all of them (checked against its count)."""
    count, keys = re.fullmatch(r'(\d+) [a-z ]+: (.*)', part).groups()
    keys = re.split(r', (?![^()]*\))', keys)  # not at the commas inside shapes
    assert int(count) == len(keys)
    return keys


def test_report_names_the_keys_a_direct_comparison_finds(monkeypatch):
    monkeypatch.setattr(checkpoint_check, 'SHOWN_KEYS', 1000)  # every key, for the comparison
    model = Ours()
    # saved by a wrapped (DDP) model: 'module.' prefixes, which the load strips
    theirs = {f'module.{k}': v for k, v in Ours(width=16, extra=False, other=True)
              .state_dict().items()}
    ours, plain = model.state_dict(), {k[len('module.'):]: v for k, v in theirs.items()}
    missing = [k for k in ours if k not in plain]
    unexpected = [k for k in plain if k not in ours]
    reshaped = [f'{k} checkpoint {tuple(plain[k].shape)} vs model {tuple(v.shape)}'
                for k, v in ours.items() if k in plain and plain[k].shape != v.shape]
    assert 'neck.1.num_batches_tracked' in missing and len(unexpected) == 4 and len(reshaped) == 6

    parts = _report(model, theirs)
    assert _keys(parts['not in the model']) == unexpected  # in the checkpoint's order
    assert _keys(parts['of another shape']) == reshaped
    # mmengine does not count a missing BatchNorm counter (torch starts it at 0): the one
    # difference from a plain key comparison
    assert _keys(parts['missing in the checkpoint']) == [
        k for k in missing if not k.endswith('num_batches_tracked')]


def test_shown_keys_are_the_first_three_with_the_count():
    parts = _report(Ours(), Ours(extra=False).state_dict())
    assert parts == {'missing in the checkpoint': '6 missing in the checkpoint: neck.0.weight, '
                     'neck.0.bias, neck.1.weight, ... (3 more)'}


def test_a_fitting_checkpoint_is_loaded_into_the_model():
    source, model = Ours(), Ours()
    check_checkpoint_fits(model, {'state_dict': source.state_dict()}, 'm.pth')
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
