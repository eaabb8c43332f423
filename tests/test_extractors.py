"""The FVD / FAD / KL / IB-VA backbones: VGGish's input features against an independent STFT, the networks' layouts against
the published checkpoints' key names, TensorFlow SAME padding, weight conversion. Random weights only (no real
checkpoint can be downloaded here): these test the plumbing and the written definitions, not learned numbers."""

import numpy as np
import pytest
import scipy.signal
import torch

from bridgedit.config import ConfigError
from bridgedit.evaluation.audioset import AudioSetClassifier
from bridgedit.evaluation.evaluate import EvalClip
from bridgedit.evaluation.extractors import ExtractorUnavailable
from bridgedit.evaluation.i3d import I3DExtractor, InceptionI3d, Unit3D, same_padding
from bridgedit.evaluation.imagebind import (
    AUDIO_MEAN,
    AUDIO_STD,
    CLIP_MEAN,
    CLIP_STD,
    EncoderSize,
    ImageBindAudioVisual,
    ImageBindScorer,
    audio_views,
    clip_starts,
    video_views,
)
from bridgedit.evaluation.vggish import (
    MEL_HIGH_HZ,
    MEL_LOW_HZ,
    SAMPLE_RATE,
    VGGish,
    VGGishExtractor,
    hertz_to_mel,
    log_mel_examples,
    mel_matrix,
)
from bridgedit.evaluation.weights import convert_to_safetensors
from bridgedit.media import MediaError

pytestmark = pytest.mark.slow  # trainings, encoders, processes: `make test-fast` leaves this file out


def audio_clip(audio, rate=SAMPLE_RATE, frames=None):
    frames = np.zeros((20, 32, 32, 3), np.uint8) if frames is None else frames
    return EvalClip(stem="clip", frames=frames, fps=15.0, audio=np.asarray(audio, np.float32)[None], sample_rate=rate)


def test_vggish_log_mel_matches_an_independent_stft():
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(2 * SAMPLE_RATE + 1234)
    examples = log_mel_examples(audio)
    frames = 1 + (len(audio) - 400) // 160  # 25 ms windows every 10 ms, whole windows only
    assert examples.shape == (frames // 96, 96, 64)
    # scipy's STFT with VGGish's periodic Hann window, no padding, 512-point FFT (scipy divides by the window sum)
    window = scipy.signal.get_window("hann", 400)
    _, _, spectrum = scipy.signal.stft(
        audio, nperseg=400, noverlap=240, nfft=512, window=window, boundary=None, padded=False
    )
    magnitude = np.abs(spectrum).T * window.sum()  # (frames, 257)
    expected = np.log(magnitude @ mel_matrix(257) + 0.01)[: examples.shape[0] * 96].reshape(examples.shape)
    np.testing.assert_allclose(examples, expected, atol=1e-9)


def test_mel_bands_are_triangles_in_mel_between_125_and_7500_hz():
    weights = mel_matrix(257)
    hertz = np.linspace(0, SAMPLE_RATE / 2, 257)
    assert weights.shape == (257, 64) and weights.min() == 0 and weights.max() <= 1
    assert not weights[(hertz <= MEL_LOW_HZ) | (hertz >= MEL_HIGH_HZ)].any()
    edges = np.linspace(hertz_to_mel(MEL_LOW_HZ), hertz_to_mel(MEL_HIGH_HZ), 66)
    np.testing.assert_allclose(hertz_to_mel(700.0), 1127 * np.log(2))
    for band in (0, 20, 63):  # each band rises to its centre, in mel, and falls to the next edge
        mel = hertz_to_mel(hertz)
        inside = (mel > edges[band]) & (mel < edges[band + 2])
        expected = np.minimum(
            (mel - edges[band]) / (edges[band + 1] - edges[band]),
            (edges[band + 2] - mel) / (edges[band + 2] - edges[band + 1]),
        )
        np.testing.assert_allclose(weights[inside, band], expected[inside])
    # a pure tone lands in the band whose centre is nearest to it in mel
    tone = np.sin(2 * np.pi * 1000 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)
    loudest_band = log_mel_examples(tone)[0].mean(axis=0).argmax()
    assert loudest_band == np.abs(edges[1:-1] - hertz_to_mel(1000)).argmin()


def test_vggish_has_torchvggish_layout_and_embeds_each_example():
    model = VGGish()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {  # torchvggish's vggish-10086976.pth keys and shapes
        "features.0.weight": (64, 1, 3, 3),
        "features.0.bias": (64,),
        "features.3.weight": (128, 64, 3, 3),
        "features.3.bias": (128,),
        "features.6.weight": (256, 128, 3, 3),
        "features.6.bias": (256,),
        "features.8.weight": (256, 256, 3, 3),
        "features.8.bias": (256,),
        "features.11.weight": (512, 256, 3, 3),
        "features.11.bias": (512,),
        "features.13.weight": (512, 512, 3, 3),
        "features.13.bias": (512,),
        "embeddings.0.weight": (4096, 12288),
        "embeddings.0.bias": (4096,),
        "embeddings.2.weight": (4096, 4096),
        "embeddings.2.bias": (4096,),
        "embeddings.4.weight": (128, 4096),
        "embeddings.4.bias": (128,),
    }
    torch.manual_seed(0)
    clip = audio_clip(np.random.default_rng(1).standard_normal(44_100 * 3) * 0.1, rate=44_100)  # resampled to 16 kHz
    one_by_one, batched = VGGishExtractor(model, "v", batch_size=1), VGGishExtractor(model, "v", batch_size=64)
    features = batched.features(clip)
    assert features.shape == (3, 128)  # 3 s -> three 0.96 s examples
    np.testing.assert_allclose(one_by_one.features(clip), features, rtol=1e-5, atol=1e-6)
    assert (features < 0).any()  # the embedding is read before the last ReLU
    with pytest.raises(MediaError, match="clip: shorter than one VGGish example"):
        batched.features(audio_clip(np.zeros(8000)))


def test_same_padding_gives_tensorflows_output_sizes():
    for size in (7, 16, 17, 224, 225):
        for kernel, stride in ((7, 2), (3, 1), (3, 2), (2, 2), (1, 1)):
            x = torch.zeros(1, 1, size, size, size)
            padded = same_padding(x, (kernel,) * 3, (stride,) * 3)
            out = (padded.shape[2] - kernel) // stride + 1
            assert out == -(-size // stride), (size, kernel, stride)
    # stride 1, odd kernel: SAME is symmetric k // 2 padding, i.e. torch's own padding="same"
    torch.manual_seed(0)
    unit = Unit3D(4, 8, (3, 3, 3), logits=True)
    x = torch.randn(2, 4, 5, 9, 9)
    np.testing.assert_allclose(
        unit(x).detach(),
        torch.nn.functional.conv3d(x, unit.conv3d.weight, unit.conv3d.bias, padding="same").detach(),
        atol=1e-6,
    )


def test_i3d_has_the_pytorch_i3d_layout_and_gives_400_logits_at_224():
    model = InceptionI3d()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["Conv3d_1a_7x7.conv3d.weight"] == (64, 3, 7, 7, 7)
    assert shapes["Conv3d_2c_3x3.bn.running_var"] == (192,)
    assert shapes["Mixed_4f.b1b.conv3d.weight"] == (320, 160, 3, 3, 3)
    assert shapes["Mixed_5c.b3b.bn.weight"] == (128,)
    assert shapes["logits.conv3d.weight"] == (400, 1024, 1, 1, 1) and shapes["logits.conv3d.bias"] == (400,)
    assert not any(k.startswith("logits.bn") for k in shapes)
    torch.manual_seed(0)
    extractor = I3DExtractor(model, "i3d")
    frames = np.random.default_rng(0).integers(0, 256, (20, 48, 80, 3), dtype=np.uint8)
    video = extractor.preprocess(frames)
    assert video.shape == (1, 3, 16, 224, 224) and video.min() >= -1 and video.max() <= 1
    assert extractor.features(audio_clip(np.zeros(100), frames=frames)).shape == (1, 400)
    with pytest.raises(MediaError, match="clip: FVD reads 16 frames; the clip has 8"):
        extractor.features(audio_clip(np.zeros(100), frames=frames[:8]))


def tiny_audioset_classifier():
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(0)
    config = ASTConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_length=128,
        num_mel_bins=64,
        id2label={i: f"class {i}" for i in range(5)},
    )
    return AudioSetClassifier(
        ASTForAudioClassification(config), ASTFeatureExtractor(num_mel_bins=64, max_length=128), "tiny AST"
    )


def test_audioset_classifier_gives_one_row_of_logits_per_clip():
    classifier = tiny_audioset_classifier()
    rng = np.random.default_rng(0)
    noise, tone = rng.standard_normal(22_050) * 0.1, np.sin(2 * np.pi * 440 * np.arange(22_050) / 22_050)
    logits = classifier.features(audio_clip(noise, rate=22_050))
    assert logits.shape == (1, 5) and logits.dtype == np.float64
    assert not np.allclose(logits, classifier.features(audio_clip(tone, rate=22_050)))


def test_converted_checkpoints_load_and_foreign_files_are_refused(tmp_path):
    torch.manual_seed(0)
    original = VGGish()
    torch.save({"state_dict": original.state_dict()}, tmp_path / "vggish.pth")
    assert convert_to_safetensors(tmp_path / "vggish.pth", tmp_path / "vggish.safetensors") == 18
    extractor = VGGishExtractor.from_pretrained(str(tmp_path))  # the folder's vggish.safetensors
    for name, tensor in original.state_dict().items():
        assert torch.equal(extractor.model.state_dict()[name], tensor)
    # I3D checkpoints from older PyTorch carry no batch-norm step counters: still accepted
    i3d = InceptionI3d()
    state = {k: v for k, v in i3d.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "rgb_imagenet.pt")
    convert_to_safetensors(tmp_path / "rgb_imagenet.pt", tmp_path / "i3d.safetensors")
    I3DExtractor.from_pretrained(str(tmp_path / "i3d.safetensors"))
    # the wrong network's weights, a pickled object, no file at all: each named
    with pytest.raises(ExtractorUnavailable, match="does not hold I3D weights .*missing Conv3d_1a_7x7"):
        I3DExtractor.from_pretrained(str(tmp_path / "vggish.safetensors"))
    torch.save({"weights": ConfigError("not a tensor")}, tmp_path / "object.pth")
    with pytest.raises(ConfigError, match="is not a plain PyTorch state dict"):
        convert_to_safetensors(tmp_path / "object.pth", tmp_path / "object.safetensors")
    assert not (tmp_path / "object.safetensors").exists()
    with pytest.raises(ExtractorUnavailable, match="VGGish weights not found .*convert-weights"):
        VGGishExtractor.from_pretrained(str(tmp_path / "nowhere"))
    with pytest.raises(ExtractorUnavailable, match="AudioSet classifier weights not found"):
        AudioSetClassifier.from_pretrained(str(tmp_path / "no-ast"))


TINY_IMAGEBIND = {"vision": EncoderSize(32, 1, 2), "audio": EncoderSize(32, 1, 2), "embedding": 16}


def test_imagebind_has_the_huge_checkpoints_layout():
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in ImageBindAudioVisual().state_dict().items()}
    assert shapes["modality_preprocessors.vision.rgbt_stem.proj.1.weight"] == (1280, 3, 2, 14, 14)
    assert shapes["modality_preprocessors.vision.pos_embedding_helper.pos_embed"] == (1, 257, 1280)
    assert shapes["modality_preprocessors.audio.rgbt_stem.proj.weight"] == (768, 1, 16, 16)
    assert shapes["modality_preprocessors.audio.pos_embedding_helper.pos_embed"] == (1, 1 + 12 * 19, 768)
    assert shapes["modality_trunks.vision.blocks.31.attn.in_proj_weight"] == (3840, 1280)
    assert shapes["modality_trunks.audio.blocks.11.attn.bias_k"] == (1, 1, 768)
    assert "modality_trunks.vision.blocks.0.attn.bias_k" not in shapes
    assert shapes["modality_heads.vision.2.weight"] == (1024, 1280) and shapes["modality_heads.audio.2.weight"] == (
        1024,
        768,
    )
    assert "modality_trunks.vision.pre_transformer_layer.0.weight" in shapes
    assert not any(k.startswith("modality_trunks.audio.pre_transformer_layer") for k in shapes)


def test_imagebind_views_follow_the_reference_sampling():
    assert clip_starts(4.0, 5) == pytest.approx([0, 0.4, 0.8, 1.2, 1.6]) and clip_starts(1.0, 3) == [0, 0, 0]
    frames = np.zeros((60, 96, 128, 3), np.uint8)
    frames[:, :, :40] = 255  # a white left band: the left crop holds more of it than the right one
    for index in range(60):
        frames[index, 0, 0] = index  # each frame's number in one pixel
    views = video_views(frames, 15.0)
    assert views.shape == (15, 3, 2, 224, 224)
    left, centre, right = views[0], views[1], views[2]
    assert left.mean() > centre.mean() > right.mean()
    white = (1 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    np.testing.assert_allclose(left[:, 0, 100, 5], white, rtol=1e-5)
    # clip i starts at i * 0.4 s: its first frame is 6 i, its last the last one before start + 2 s (30 frames later)
    with torch.no_grad():
        first_pixels = [float(views[3 * i, 0, 0, 0, 0]) * CLIP_STD[0] + CLIP_MEAN[0] for i in range(5)]
        last_pixels = [float(views[3 * i, 0, 1, 0, 0]) * CLIP_STD[0] + CLIP_MEAN[0] for i in range(5)]
    assert [round(p * 255) for p in first_pixels] == [0, 6, 12, 18, 24]
    assert [round(p * 255) for p in last_pixels] == [29, 35, 41, 47, 53]
    # audio: three 2 s clips of the first channel, 198 Kaldi frames each, zero-padded to 204 before normalising
    rng = np.random.default_rng(0)
    stereo = np.stack([rng.standard_normal(4 * 16_000), np.zeros(4 * 16_000)]).astype(np.float32) * 0.1
    banks = audio_views(stereo, 16_000)
    assert banks.shape == (3, 1, 128, 204)
    np.testing.assert_allclose(banks[:, :, :, 198:], -AUDIO_MEAN / AUDIO_STD, rtol=1e-6)
    np.testing.assert_array_equal(banks, audio_views(stereo[:1], 16_000))  # the second channel is not read
    assert audio_views(stereo * 10, 16_000)[:, :, :, :198].mean() > banks[:, :, :, :198].mean()  # louder, higher


def test_imagebind_scorer_loads_its_modalities_and_scores_a_clip(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = ImageBindAudioVisual(TINY_IMAGEBIND["vision"], TINY_IMAGEBIND["audio"], TINY_IMAGEBIND["embedding"])
    state = dict(model.state_dict())
    state["modality_trunks.text.blocks.0.attn.in_proj_weight"] = torch.zeros(3, 3)  # other modalities: ignored
    state["modality_postprocessors.audio.1.log_logit_scale"] = torch.tensor(np.log(20.0))
    save_file(state, tmp_path / "imagebind.safetensors")
    scorer = ImageBindScorer.from_pretrained(str(tmp_path), sizes=TINY_IMAGEBIND)
    rng = np.random.default_rng(0)
    clip = EvalClip(
        stem="c",
        frames=rng.integers(0, 256, (30, 64, 80, 3), dtype=np.uint8),
        fps=15.0,
        audio=rng.standard_normal((1, 2 * 22_050)).astype(np.float32) * 0.1,
        sample_rate=22_050,
    )
    score = scorer.score(clip)
    assert -100 <= score <= 100
    one_at_a_time = ImageBindScorer(scorer.model, "tiny", batch_size=1)
    assert one_at_a_time.score(clip) == pytest.approx(score, abs=1e-4)
    del state["modality_heads.audio.2.weight"]
    save_file(state, tmp_path / "broken.safetensors")
    with pytest.raises(ExtractorUnavailable, match="does not hold ImageBind weights .*missing modality_heads.audio.2"):
        ImageBindScorer.from_pretrained(str(tmp_path / "broken.safetensors"), sizes=TINY_IMAGEBIND)
    with pytest.raises(ExtractorUnavailable, match="ImageBind weights not found .*imagebind_huge.pth"):
        ImageBindScorer.from_pretrained(str(tmp_path / "nothing"))


def test_imagebind_filter_for_prepare(tmp_path, capsys):
    from bridgedit.cli.main import main

    torch.manual_seed(0)
    scorer = ImageBindScorer(ImageBindAudioVisual(*TINY_IMAGEBIND.values()), "tiny")
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (20, 48, 64, 3), dtype=np.uint8)
    audio = rng.standard_normal(16_000 * 2).astype(np.float32) * 0.1  # prepare's mono (samples,)
    clip = EvalClip(stem="c", frames=frames, fps=10.0, audio=audio[None], sample_rate=16_000)
    assert scorer.as_prepare_filter(10.0)(frames, audio, 16_000) == pytest.approx(scorer.score(clip) / 100, abs=1e-6)
    source = tmp_path / "src"
    source.mkdir()
    assert (
        main(
            [
                "prepare",
                str(source),
                "--out",
                str(tmp_path / "ds"),
                "--av-filter",
                "imagebind",
                "--imagebind-weights",
                str(tmp_path / "none"),
            ]
        )
        == 2
    )
    assert "ImageBind weights not found" in capsys.readouterr().err
