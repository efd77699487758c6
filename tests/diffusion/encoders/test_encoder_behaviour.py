"""Behaviour of the autoencoder, encoders and preprocessing beyond the vector files: the fused fusion
attention equals explicit per-frame attention, references land on the chunk's first and last frames,
the splice, the two-frame encode, and clear errors for bad images."""

from __future__ import annotations

import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tooncrafter_studio.core.errors import InputError  # noqa: E402
from tooncrafter_studio.diffusion.checks.fill import fill_module  # noqa: E402
from tooncrafter_studio.diffusion.nets.ae_blocks import Combiner, FusionAttention  # noqa: E402
from tooncrafter_studio.diffusion.nets.autoencoder import (  # noqa: E402
    Autoencoder,
    AutoencoderConfig,
    concat_condition,
    decode_interpolation,
    encode_pair,
    encode_video,
    splice_indices,
)
from tooncrafter_studio.diffusion.run.preprocess import (  # noqa: E402
    image_to_tensor,
    resize_center_crop,
    tensor_to_images,
)


def _tiny_ae() -> Autoencoder:
    ae = Autoencoder(AutoencoderConfig(ch=32, ch_mult=(1, 2), num_res_blocks=1)).eval()
    fill_module(ae, "first_stage_model.")
    return ae


def test_fusion_attention_equals_explicit_per_frame_attention():
    torch.manual_seed(0)
    attn = FusionAttention(32, heads=2, dim_head=8).eval()
    frames, b, h, w = 3, 2, 4, 5
    x = torch.randn(b * frames, 32, h, w)
    ref = torch.randn(b, 32, 2, h, w)
    with torch.no_grad():
        ours = attn(x, ref, frames)
        expected = torch.empty_like(x)
        for i in range(b * frames):
            q = attn.to_q(attn.norm(x[i : i + 1]).flatten(2).transpose(1, 2))[0]  # (hw, 16)
            kv_in = ref[i // frames].flatten(1).transpose(0, 1)  # (2hw, 32)
            k, v = attn.to_k(kv_in), attn.to_v(kv_in)
            heads = []
            for head in range(2):
                sl = slice(8 * head, 8 * head + 8)
                scores = q[:, sl] @ k[:, sl].T / 8**0.5
                heads.append(scores.softmax(-1) @ v[:, sl])
            out = attn.to_out(torch.cat(heads, dim=1))  # (hw, 32)
            expected[i] = x[i] + out.T.reshape(32, h, w)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_combiner_touches_only_first_and_last_frame_of_the_chunk():
    comb = Combiner(32)
    x = torch.randn(5, 32, 3, 4)
    ref = torch.randn(1, 32, 2, 3, 4)
    with torch.no_grad():
        out = comb(x, ref, 5)
        torch.testing.assert_close(out[1:4], x[1:4])
        torch.testing.assert_close(out[0], x[0] + comb.conv(ref[:, :, 0])[0])
        torch.testing.assert_close(out[4], x[4] + comb.conv(ref[:, :, 1])[0])


def test_splice_indices_and_concat_condition():
    assert splice_indices(16) == [0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15]
    a, b = torch.randn(1, 4, 2, 3), torch.randn(1, 4, 2, 3)
    c = concat_condition(a, b, 16)
    assert c.shape == (1, 4, 16, 2, 3)
    assert torch.equal(c[:, :, 0], a) and torch.equal(c[:, :, 15], b)
    assert not c[:, :, 1:15].any()


def test_pair_encode_equals_the_sixteen_frame_encode_and_splice_uses_the_second_pass():
    ae = _tiny_ae()
    a, b = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    noise = torch.randn(16, 4, 8, 8)
    video = torch.stack([a[0]] * 8 + [b[0]] * 8, dim=1)[None]
    with torch.no_grad():
        z, refs = encode_video(ae, video, noise)
        z0, z15, pair_refs = encode_pair(ae, a, b, noise)
        torch.testing.assert_close(z0, z[:, :, 0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(z15, z[:, :, 15], rtol=1e-5, atol=1e-6)
        for r, p in zip(refs, pair_refs, strict=True):
            torch.testing.assert_close(r, p, rtol=1e-5, atol=1e-6)
        latent = torch.randn(1, 4, 16, 8, 8)
        final, d16, d14 = decode_interpolation(ae, latent, refs)
    assert d14.shape[2] == 14
    # The chunk length changes the numbers (temporal layers), so the splice is visible.
    assert not torch.allclose(d16[:, :, 7], d14[:, :, 6])
    assert torch.equal(final[:, :, 7], d14[:, :, 6]) and torch.equal(final[:, :, 8], d14[:, :, 7])
    keep = [i for i in range(16) if i not in (7, 8)]
    assert torch.equal(final[:, :, keep], d16[:, :, keep])


def test_decode_never_applies_post_quant_conv():
    ae = _tiny_ae()
    refs = [torch.randn(1, c, 2, s, s) for c, s in ((32, 16), (64, 8), (32, 16))]
    latent = torch.randn(1, 4, 3, 8, 8)
    with torch.no_grad():
        before = ae.decode(latent, refs)
        ae.post_quant_conv.weight.mul_(3.0)
        after = ae.decode(latent, refs)
    assert torch.equal(before, after)


def test_tokenizer_and_clip_build_need_no_network(monkeypatch):
    pytest.importorskip("open_clip")
    from tooncrafter_studio.diffusion.nets.clip import ImageEmbedder, TextEncoder, tokenize

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    tokens = tokenize(["a cat", ""])
    assert tokens.shape == (2, 77) and tokens[1, :3].tolist() == [49406, 49407, 0]
    with torch.device("meta"):
        TextEncoder()
        ImageEmbedder()


def test_image_conversions():
    image = np.array([[[0, 128, 255]]], dtype=np.uint8)
    x = image_to_tensor(image)
    assert x.shape == (3, 1, 1)
    torch.testing.assert_close(x[:, 0, 0], torch.tensor([-1.0, 128 / 255 * 2 - 1, 1.0]))
    video = torch.tensor([-2.0, -1.0, 0.0, 0.999, 1.5]).view(1, 5, 1, 1).expand(3, 5, 1, 1)
    frames = tensor_to_images(video)
    assert frames.shape == (5, 1, 1, 3) and frames.dtype == np.uint8
    assert frames[:, 0, 0, 0].tolist() == [0, 0, 127, 254, 255]  # truncation, not rounding


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8),
                                 np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)])
def test_bad_images_get_a_clear_error(bad):
    with pytest.raises(InputError, match="RGB uint8"):
        resize_center_crop(bad)
    with pytest.raises(InputError):
        image_to_tensor(bad)


@pytest.mark.parametrize("size", [(200, 300), (321, 513), (500, 333), (1080, 1920), (17, 1000), (600, 600)])
def test_resize_center_crop_matches_torchvision(size):
    transforms = pytest.importorskip("torchvision.transforms")
    from PIL import Image

    image = np.random.default_rng(size[0]).integers(0, 256, (*size, 3), dtype=np.uint8)
    expected = np.asarray(transforms.CenterCrop((320, 512))(transforms.Resize(320)(Image.fromarray(image))))
    assert np.array_equal(resize_center_crop(image), expected)


@pytest.mark.parametrize("piece_elements", [500, 7000, 1 << 30])
def test_lean_decode_gives_the_plain_decoders_numbers(piece_elements):
    from tooncrafter_studio.diffusion.nets.ae_lean import decode_lean

    cfg = AutoencoderConfig(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1)
    ae = Autoencoder(cfg).eval()
    fill_module(ae, "first_stage_model.")
    frames = 5
    z = torch.randn(frames, 4, 4, 6)
    refs = [torch.randn(1, c, 2, s, 6 * s // 4) for c, s in ((32, 16), (64, 8), (64, 4), (32, 16))]
    with torch.no_grad():
        plain = ae.decoder(z, refs, frames)
        lean = decode_lean(ae.decoder, z.clone(), refs, frames, piece_elements=piece_elements)
    assert lean.shape == plain.shape == (frames, 3, 16, 24)
    torch.testing.assert_close(lean, plain, rtol=0, atol=2e-5 * float(plain.abs().max()))
