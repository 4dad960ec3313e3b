"""Fusion modules: GeminiFusion against a per-pixel reference, locality, gradients, baselines."""
import math

import pytest
import torch
import torch.nn.functional as F

import gemini_det3d  # noqa: F401  (registers the modules)
from gemini_det3d.fusion import (AddFusion, ConcatFusion, CrossAttentionFusion,
                                 FusionInputError, GeminiFusion, NoFusion, TokenFusion)
from mmdet3d.registry import MODELS

ALL_TYPES = ['GeminiFusion', 'TokenFusion', 'CrossAttentionFusion', 'ConcatFusion',
             'AddFusion', 'NoFusion']


def _randomise(module, std=0.4, seed=0):
    """Spread all parameters so attention weights and phi are far from uniform."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return module


def _streams(batch, tokens, channels, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, tokens, channels, generator=gen),
            torch.randn(batch, tokens, channels, generator=gen))


def _reference_direction(module, attention, own, other, noise_row):
    """Y[i] = X[i] + Attn(Q, K, V) at every pixel, written straight from the formulas."""
    heads = module.num_heads
    channels = own.shape[-1]
    head_dims = channels // heads
    phi = module.relation_discriminator
    key_noise = module.key_noise.weight[noise_row]
    value_noise = module.value_noise.weight[noise_row]
    w_q, b_q = attention.query_proj.weight, attention.query_proj.bias
    w_k = attention.key_proj.weight
    w_v, b_v = attention.value_proj.weight, attention.value_proj.bias
    w_o, b_o = attention.out_proj.weight, attention.out_proj.bias
    result = torch.empty_like(own)
    for b in range(own.shape[0]):
        for i in range(own.shape[1]):
            x_own, x_other = own[b, i], other[b, i]
            hidden = F.gelu(phi.fc1.weight @ torch.cat([x_own, x_other]) + phi.fc1.bias)
            relation = torch.softmax(phi.fc2.weight @ hidden + phi.fc2.bias, dim=0)
            query = w_q @ x_own + b_q
            keys = torch.stack([w_k @ (key_noise + x_own), w_k @ (x_own * relation)])
            values = torch.stack([w_v @ (value_noise + x_own) + b_v, w_v @ x_other + b_v])
            head_outputs = []
            for h in range(heads):
                part = slice(h * head_dims, (h + 1) * head_dims)
                logits = keys[:, part] @ query[part] / math.sqrt(head_dims)
                head_outputs.append(torch.softmax(logits, dim=0) @ values[:, part])
            result[b, i] = x_own + w_o @ torch.cat(head_outputs) + b_o
    return result


@pytest.mark.parametrize('batch,tokens,channels,heads',
                         [(1, 1, 8, 1), (2, 5, 16, 4), (3, 7, 24, 8), (2, 6, 32, 8), (1, 9, 12, 3)])
def test_gemini_fusion_equals_per_pixel_reference(batch, tokens, channels, heads):
    module = _randomise(GeminiFusion(channels, num_heads=heads), seed=batch * 100 + tokens)
    x_rgb, x_lidar = _streams(batch, tokens, channels)
    with torch.no_grad():
        y_rgb, y_lidar = module(x_rgb, x_lidar, hw_shape=(1, tokens))
        ref_rgb = _reference_direction(module, module.rgb_attention, x_rgb, x_lidar, 0)
        ref_lidar = _reference_direction(module, module.lidar_attention, x_lidar, x_rgb, 1)
    torch.testing.assert_close(y_rgb, ref_rgb, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y_lidar, ref_lidar, atol=1e-5, rtol=1e-5)
    # the test is not vacuous: the fusion actually changed the tokens
    assert (y_rgb - x_rgb).abs().max() > 0.1


def test_gemini_attention_weights_are_not_trivial():
    """The reference comparison is only meaningful if both keys matter."""
    module = _randomise(GeminiFusion(16, num_heads=4))
    x_rgb, x_lidar = _streams(2, 20, 16)
    att = module.rgb_attention
    with torch.no_grad():
        relation = module.relation_discriminator(x_rgb, x_lidar)
        q = att._split_heads(att.query_proj(x_rgb))
        gap = att._split_heads(att.key_proj(module.key_noise.weight[0] + x_rgb - x_rgb * relation))
        w_self = torch.sigmoid((q * gap).sum(-1) * att.scale)
    assert w_self.min() < 0.2 and w_self.max() > 0.8


def _change_pixel(x, batch_index, pixel):
    changed = x.clone()
    changed[batch_index, pixel] += 3.0
    return changed


def test_gemini_fusion_is_local_and_cross_attention_is_not():
    channels, tokens, pixel = 16, 12, 5
    x_rgb, x_lidar = _streams(2, tokens, channels)
    x_lidar_changed = _change_pixel(x_lidar, 1, pixel)
    others = [i for i in range(tokens) if i != pixel]

    gemini = _randomise(GeminiFusion(channels, num_heads=4))
    cross = _randomise(CrossAttentionFusion(channels, num_heads=4))
    with torch.no_grad():
        for module in (gemini, cross):
            before = module(x_rgb, x_lidar, (3, 4))
            after = module(x_rgb, x_lidar_changed, (3, 4))
            changes_elsewhere = []
            for y0, y1 in zip(before, after):
                # the other batch item never changes; pixel j itself always does
                torch.testing.assert_close(y0[0], y1[0], atol=1e-6, rtol=0)
                assert (y0[1, pixel] - y1[1, pixel]).abs().max() > 1e-3
                changes_elsewhere.append((y0[1, others] - y1[1, others]).abs().max())
            if module is gemini:
                assert max(changes_elsewhere) <= 1e-6
            else:
                # RGB queries attend to every LiDAR token: all RGB outputs move
                assert changes_elsewhere[0] > 1e-4


def test_gemini_gradients_reach_every_parameter():
    module = _randomise(GeminiFusion(16, num_heads=4))
    x_rgb, x_lidar = _streams(2, 10, 16)
    y_rgb, y_lidar = module(x_rgb, x_lidar)
    gen = torch.Generator().manual_seed(3)
    loss = (y_rgb * torch.randn(y_rgb.shape, generator=gen)).sum() + \
        (y_lidar * torch.randn(y_lidar.shape, generator=gen)).sum()
    loss.backward()
    names = dict(module.named_parameters())
    for required in ('relation_discriminator.fc1.weight', 'relation_discriminator.fc2.weight',
                     'key_noise.weight', 'value_noise.weight'):
        assert required in names
    for direction in ('rgb_attention', 'lidar_attention'):
        for proj in ('query_proj', 'key_proj', 'value_proj', 'out_proj'):
            assert f'{direction}.{proj}.weight' in names
    for name, param in names.items():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    # both noise rows (one per direction) learn
    for noise in (module.key_noise, module.value_noise):
        assert (noise.weight.grad.abs().sum(dim=1) > 0).all()


def test_gemini_noise_is_learned_not_sampled():
    module = GeminiFusion(16, num_heads=4)
    x_rgb, x_lidar = _streams(1, 8, 16)
    with torch.no_grad():
        first = module(x_rgb, x_lidar)
        second = module(x_rgb, x_lidar)
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    assert module.key_noise.weight.shape == (2, 16)
    assert module.value_noise.weight.std() > 0.5  # N(0, 1) init


def test_no_fusion_returns_its_inputs():
    x_rgb, x_lidar = _streams(2, 6, 8)
    y_rgb, y_lidar = NoFusion(8)(x_rgb, x_lidar, (2, 3))
    assert y_rgb is x_rgb and y_lidar is x_lidar


def test_token_fusion_replaces_exactly_the_low_scoring_tokens():
    channels = 16
    module = _randomise(TokenFusion(channels), std=0.5)
    x_rgb, x_lidar = _streams(2, 30, channels)
    with torch.no_grad():
        score_rgb, score_lidar = module.scores(x_rgb, x_lidar)
        module.threshold = float(torch.cat([score_rgb.flatten(), score_lidar.flatten()]).median())
        y_rgb, y_lidar = module(x_rgb, x_lidar)
        for y, own, other, score, proj in (
                (y_rgb, x_rgb, x_lidar, score_rgb, module.lidar_to_rgb),
                (y_lidar, x_lidar, x_rgb, score_lidar, module.rgb_to_lidar)):
            low = score < module.threshold
            assert 0 < low.sum() < low.numel()
            torch.testing.assert_close(y[low], proj(other)[low])
            torch.testing.assert_close(y[~low], own[~low])
            assert (y[low] - own[low]).abs().max() > 0.1  # replaced tokens differ


def test_token_fusion_default_threshold_and_score_gradients():
    module = TokenFusion(16)
    assert module.threshold == 0.02
    x_rgb, x_lidar = _streams(1, 12, 16)
    with torch.no_grad():  # push every RGB score to ~0: all RGB tokens replaced
        module.rgb_scorer.net[-1].bias.copy_(torch.tensor([-20.0, 20.0]))
        y_rgb, _ = module(x_rgb, x_lidar)
    torch.testing.assert_close(y_rgb, module.lidar_to_rgb(x_lidar).detach())
    module = _randomise(TokenFusion(16), std=0.3)
    y_rgb, y_lidar = module(x_rgb.requires_grad_(), x_lidar)
    (y_rgb.square().sum() + y_lidar.square().sum()).backward()
    assert module.rgb_scorer.net[1].weight.grad.abs().sum() > 0
    assert module.lidar_scorer.net[1].weight.grad.abs().sum() > 0


def test_token_fusion_hands_over_the_authors_l1_loss_once():
    module = _randomise(TokenFusion(16), std=0.3).train()
    x_rgb, x_lidar = _streams(2, 12, 16)
    module(x_rgb, x_lidar)
    score_rgb, score_lidar = module.last_scores
    losses = module.pop_auxiliary_losses()
    # lamda * sum |s| over both streams, every token and the whole batch (yikaiw/TokenFusion)
    torch.testing.assert_close(losses['loss_token_l1'],
                               1e-4 * (score_rgb.abs().sum() + score_lidar.abs().sum()))
    assert module.pop_auxiliary_losses() == {}, 'a popped loss must not be handed over twice'
    losses['loss_token_l1'].backward()
    assert module.rgb_scorer.net[1].weight.grad.abs().sum() > 0
    assert module.lidar_scorer.net[1].weight.grad.abs().sum() > 0
    with torch.no_grad():
        module.eval()(x_rgb, x_lidar)
    assert module.pop_auxiliary_losses() == {}, 'no training loss from an eval forward'
    switched_off = TokenFusion(16, l1_weight=0.0).train()
    switched_off(x_rgb, x_lidar)
    assert switched_off.pop_auxiliary_losses() == {}
    assert GeminiFusion(16).train().pop_auxiliary_losses() == {}


def test_cross_attention_matches_multihead_attention_formula():
    channels, heads = 16, 4
    module = _randomise(CrossAttentionFusion(channels, num_heads=heads))
    x_rgb, x_lidar = _streams(2, 7, channels)
    att = module.rgb_attention
    with torch.no_grad():
        y_rgb, _ = module(x_rgb, x_lidar)
        q = att.query_proj(x_rgb).unflatten(-1, (heads, -1)).transpose(1, 2)
        k = att.key_proj(x_lidar).unflatten(-1, (heads, -1)).transpose(1, 2)
        v = att.value_proj(x_lidar).unflatten(-1, (heads, -1)).transpose(1, 2)
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(channels // heads), dim=-1)
        expected = x_rgb + att.out_proj((weights @ v).transpose(1, 2).flatten(-2))
    torch.testing.assert_close(y_rgb, expected, atol=1e-5, rtol=1e-5)


def test_concat_starts_as_identity_and_add_sums():
    x_rgb, x_lidar = _streams(2, 5, 8)
    with torch.no_grad():
        y_rgb, y_lidar = ConcatFusion(8)(x_rgb, x_lidar)
    torch.testing.assert_close(y_rgb, x_rgb)
    torch.testing.assert_close(y_lidar, x_lidar)
    concat = _randomise(ConcatFusion(8))
    with torch.no_grad():
        y_rgb, _ = concat(x_rgb, x_lidar)
        proj = concat.rgb_proj
        expected = torch.cat([x_rgb, x_lidar], -1) @ proj.weight.t() + proj.bias
    torch.testing.assert_close(y_rgb, expected)
    y_rgb, y_lidar = AddFusion(8)(x_rgb, x_lidar)
    torch.testing.assert_close(y_rgb, x_rgb + x_lidar)
    torch.testing.assert_close(y_lidar, x_rgb + x_lidar)
    y_rgb, _ = AddFusion(8, average=True)(x_rgb, x_lidar)
    torch.testing.assert_close(y_rgb, (x_rgb + x_lidar) / 2)


@pytest.mark.parametrize('fusion_type', ALL_TYPES)
def test_every_type_builds_from_registry_and_keeps_shapes(fusion_type):
    module = MODELS.build(dict(type=fusion_type, embed_dims=16))
    assert type(module).__name__ == fusion_type
    x_rgb, x_lidar = _streams(2, 12, 16)
    y_rgb, y_lidar = module(x_rgb, x_lidar, hw_shape=(3, 4))
    assert y_rgb.shape == x_rgb.shape and y_lidar.shape == x_lidar.shape
    assert torch.isfinite(y_rgb).all() and torch.isfinite(y_lidar).all()
    with pytest.raises(FusionInputError, match=fusion_type):
        module(x_rgb, x_lidar[:, :5])
    with pytest.raises(FusionInputError, match='hw_shape'):
        module(x_rgb, x_lidar, hw_shape=(5, 5))


def test_bad_head_count_is_one_clear_error():
    with pytest.raises(FusionInputError, match='not divisible'):
        GeminiFusion(30, num_heads=8)
    with pytest.raises(FusionInputError, match='not divisible'):
        CrossAttentionFusion(30, num_heads=8)
