"""`bridgedit evaluate`: pairing, AV-Align through real files, CLIP / CLAP plumbing with tiny random models."""

import json

import numpy as np
import pytest
import torch
from test_av_align import FPS, JUMPS, RATE, clicks, jumping_square

from bridgedit.cli.main import main
from bridgedit.evaluation.evaluate import evaluate, load_clip
from bridgedit.evaluation.extractors import ClapScorer, ClipScorer, ExtractorUnavailable
from bridgedit.media import write_sounding_video, write_wav

pytestmark = pytest.mark.slow  # trainings, encoders, processes: `make test-fast` leaves this file out


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    generated, reference = root / "generated", root / "reference"
    generated.mkdir()
    reference.mkdir()
    frames = jumping_square()
    aligned, shifted = clicks([j / FPS for j in JUMPS]), clicks([(j + 3) / FPS for j in JUMPS])
    write_sounding_video(generated / "aligned.mp4", frames, FPS, np.stack([aligned] * 2), RATE)
    write_sounding_video(generated / "shifted.mp4", frames, FPS, np.stack([aligned] * 2), RATE)
    write_wav(generated / "shifted.wav", shifted[None], RATE)  # the .wav beside wins over the mp4's audio
    write_sounding_video(generated / "extra.mp4", frames, FPS, np.stack([aligned] * 2), RATE)
    for stem in ("aligned", "shifted", "lonely"):
        write_sounding_video(reference / f"{stem}.mp4", frames, FPS, np.stack([aligned] * 2), RATE)
    captions = root / "captions.jsonl"
    captions.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {"id": "aligned", "video_prompt": "a textured square jumps", "audio_prompt": "sharp clicks"},
                {"id": "shifted", "prompt": "a square and clicks"},
                {"id": "extra", "captions": {"video": "a square", "audio": "clicks"}},
            ]
        )
    )
    return generated, reference, captions


def test_av_align_through_files_and_pairing(folders, capsys):
    generated, reference, _ = folders
    assert main(["evaluate", "--generated", str(generated), "--reference", str(reference), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 2 and result["av_align"] == pytest.approx(0.5)  # aligned 1.0, shifted 0.0
    assert result["unpaired"] == {"generated_only": ["extra"], "reference_only": ["lonely"]}
    assert "librosa" in result["backbones"]["av_align"]


def test_markdown_table_in_the_papers_layout(folders, capsys):
    generated, _, _ = folders
    assert main(["evaluate", "--generated", str(generated)]) == 0
    table = capsys.readouterr().out
    assert "| Method | FVD↓ | KVD↓ | FAD↓ | KL↓ | CLIPSIM↑ | CLAP↑ | IB-VA↑ | AV-Align↑ |" in table
    assert "| generated (N=3) | – | – | – | – | – | – | – | 0.6667 |" in table


def test_loading_prefers_the_wav_and_reads_the_mp4_audio_otherwise(folders):
    generated, _, _ = folders
    with_wav = load_clip("shifted", generated / "shifted.mp4", generated / "shifted.wav")
    without = load_clip("aligned", generated / "aligned.mp4", None)
    assert with_wav.sample_rate == RATE and with_wav.audio.shape[0] == 1
    assert without.sample_rate == 44_100 and without.audio.shape[0] == 2  # AAC at 44.1 kHz for low rates
    assert with_wav.frames.shape == (60, 96, 128, 3) and with_wav.fps == FPS


def tiny_clip_scorer(batch_size=16):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from bridgedit import tiny

    torch.manual_seed(0)
    model = CLIPModel(
        CLIPConfig(
            text_config=dict(
                vocab_size=200,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                max_position_embeddings=64,
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=0,
            ),
            vision_config=dict(
                image_size=32,
                patch_size=8,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
            ),
            projection_dim=16,
        )
    )
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return ClipScorer(model, tiny.tokenizer(), processor, "tiny CLIP", batch_size=batch_size)


def tiny_clap_scorer():
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    from bridgedit import tiny

    torch.manual_seed(0)
    audio = dict(
        spec_size=256,
        num_mel_bins=64,
        patch_size=4,
        patch_stride=[4, 4],
        hidden_size=32,
        depths=[1, 1],
        num_attention_heads=[2, 2],
        window_size=8,
        patch_embeds_hidden_size=16,
        projection_dim=16,
    )
    model = ClapModel(
        ClapConfig(
            text_config=dict(
                vocab_size=200,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=1,
                num_attention_heads=2,
                max_position_embeddings=80,
                projection_dim=16,
            ),
            audio_config=audio,
            projection_dim=16,
        )
    )
    return ClapScorer(model, tiny.tokenizer(), ClapFeatureExtractor(truncation="rand_trunc"), "tiny CLAP")


def test_clipsim_and_clap_plumbing(folders):
    generated, _, captions = folders
    result = evaluate(
        generated,
        captions=captions,
        scorers={"clipsim": tiny_clip_scorer(), "clap": tiny_clap_scorer()},
        progress=False,
    )
    assert set(result.values) == {"av_align", "clipsim", "clap"} and result.n == 3
    for scores in result.per_clip.values():
        assert -100 <= scores["clipsim"] <= 100 and -100 <= scores["clap"] <= 100
    assert result.values["clipsim"] == pytest.approx(np.mean([s["clipsim"] for s in result.per_clip.values()]))
    assert result.backbones["clipsim"] == "tiny CLIP" and result.backbones["clap"] == "tiny CLAP"
    # captions are paired by stem: another caption gives another score
    clip = load_clip("aligned", generated / "aligned.mp4", None)
    assert tiny_clip_scorer().score(clip, "a square") != pytest.approx(tiny_clip_scorer().score(clip, "sharp clicks"))


def test_clipsim_batching_does_not_change_the_score(folders):
    generated, _, _ = folders
    clip = load_clip("aligned", generated / "aligned.mp4", None)
    assert tiny_clip_scorer(batch_size=7).score(clip, "a square") == pytest.approx(
        tiny_clip_scorer(batch_size=64).score(clip, "a square"), abs=1e-4
    )


def test_missing_weights_and_unprovided_metrics_are_named(folders, tmp_path, capsys):
    with pytest.raises(ExtractorUnavailable, match="CLIP weights not found at '/no/such/clip'"):
        ClipScorer.from_pretrained("/no/such/clip")
    generated, reference, captions = folders
    assert main(["evaluate", "--generated", str(generated), "--metrics", "clipsim"]) == 2
    assert "give --captions" in capsys.readouterr().err
    assert (
        main(
            [
                "evaluate",
                "--generated",
                str(generated),
                "--captions",
                str(captions),
                "--metrics",
                "clap",
                "--clap-model",
                str(tmp_path / "none"),
            ]
        )
        == 2
    )
    assert "CLAP weights not found" in capsys.readouterr().err


def tiny_feature_extractors():
    from test_extractors import tiny_audioset_classifier

    from bridgedit.evaluation.i3d import I3DExtractor, InceptionI3d
    from bridgedit.evaluation.vggish import VGGish, VGGishExtractor

    torch.manual_seed(0)
    return {
        "i3d": I3DExtractor(InceptionI3d(), "tiny I3D", size=64),
        "vggish": VGGishExtractor(VGGish(), "tiny VGGish"),
        "audioset": tiny_audioset_classifier(),
    }


def test_set_metrics_pair_clips_and_pool_their_features(folders):
    from bridgedit.evaluation import frechet_distance, kl_divergence, mmd2_polynomial

    generated, reference, _ = folders
    extractors = tiny_feature_extractors()
    result = evaluate(
        generated, reference=reference, metrics=["fvd", "kvd", "fad", "kl"], scorers=extractors, progress=False
    )
    assert result.n == 2 and set(result.values) == {"fvd", "kvd", "fad", "kl"}
    assert result.backbones == {"fvd": "tiny I3D", "kvd": "tiny I3D", "fad": "tiny VGGish", "kl": "tiny AST"}
    # the same numbers from the extractors and the statistics directly, clip by clip in paired order
    pairs = [
        (
            load_clip(s, generated / f"{s}.mp4", generated / f"{s}.wav" if s == "shifted" else None),
            load_clip(s, reference / f"{s}.mp4", None),
        )
        for s in ("aligned", "shifted")
    ]
    feats = {
        side: {kind: [e.features(pair[side]) for pair in pairs] for kind, e in extractors.items()} for side in (0, 1)
    }
    assert result.values["fvd"] == pytest.approx(
        frechet_distance(np.concatenate(feats[0]["i3d"]), np.concatenate(feats[1]["i3d"]))
    )
    assert result.values["kvd"] == pytest.approx(
        mmd2_polynomial(np.concatenate(feats[0]["i3d"]), np.concatenate(feats[1]["i3d"]))
    )
    assert np.concatenate(feats[0]["vggish"]).shape == (8, 128)  # four 0.96 s examples per 4 s clip, pooled
    assert result.values["fad"] == pytest.approx(
        frechet_distance(np.concatenate(feats[0]["vggish"]), np.concatenate(feats[1]["vggish"]))
    )
    assert result.values["kl"] == pytest.approx(
        kl_divergence(np.concatenate(feats[1]["audioset"]), np.concatenate(feats[0]["audioset"]))
    )
    # KL is per pair: the aligned clip is the same file on both sides (0), the shifted one has other audio (> 0)
    assert result.per_clip["aligned"]["kl"] == pytest.approx(0, abs=1e-12) and result.per_clip["shifted"]["kl"] > 0


def test_set_metrics_need_a_reference_and_weights(folders, tmp_path, capsys):
    generated, reference, _ = folders
    assert main(["evaluate", "--generated", str(generated), "--metrics", "fad"]) == 2
    assert "fad compares the generated set with a reference set: give --reference" in capsys.readouterr().err
    assert (
        main(
            [
                "evaluate",
                "--generated",
                str(generated),
                "--reference",
                str(reference),
                "--metrics",
                "fvd",
                "--i3d-weights",
                str(tmp_path),
            ]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert "I3D weights not found" in error and "bridgedit convert-weights rgb_imagenet.pt" in error
    assert (
        main(["evaluate", "--generated", str(generated), "--metrics", "ib_va", "--imagebind-weights", str(tmp_path)])
        == 2
    )
    assert "ImageBind weights not found" in capsys.readouterr().err


def test_ib_va_needs_neither_reference_nor_captions(folders):
    from test_extractors import TINY_IMAGEBIND

    from bridgedit.evaluation.imagebind import ImageBindAudioVisual, ImageBindScorer

    generated, _, _ = folders
    torch.manual_seed(0)
    scorer = ImageBindScorer(ImageBindAudioVisual(*TINY_IMAGEBIND.values()), "tiny ImageBind")
    result = evaluate(generated, metrics=["ib_va", "av_align"], scorers={"ib_va": scorer}, progress=False)
    assert result.n == 3 and result.backbones["ib_va"] == "tiny ImageBind"
    assert result.values["ib_va"] == pytest.approx(np.mean([c["ib_va"] for c in result.per_clip.values()]))
    # shifted.mp4 is read with its own .wav, the others with their mp4 audio: the same video, other scores
    assert result.per_clip["shifted"]["ib_va"] != pytest.approx(result.per_clip["aligned"]["ib_va"])


def test_convert_weights_command(tmp_path, capsys):
    from bridgedit.evaluation.vggish import VGGish

    torch.save(VGGish().state_dict(), tmp_path / "vggish-10086976.pth")
    assert main(["convert-weights", str(tmp_path / "vggish-10086976.pth"), str(tmp_path / "vggish.safetensors")]) == 0
    assert "wrote 18 tensors" in capsys.readouterr().out
    assert main(["convert-weights", str(tmp_path / "absent.pth"), str(tmp_path / "x.safetensors")]) == 2
    assert "absent.pth does not exist" in capsys.readouterr().err
