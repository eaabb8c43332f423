"""Are bridgedit's evaluation backbones the reference networks? Each is compared with the reference release's own
PyTorch code, both given the same random weights (no real weights can be downloaded here; the key names and shapes
are the published checkpoints', so real weights load into both alike):

- I3D against piergiaj/pytorch-i3d's `pytorch_i3d.py` (16 x 224 x 224 input, logits averaged over time);
- VGGish against harritaylor/torchvggish: the network (before its last ReLU) and `waveform_to_examples`, the log-mel
  input features, on 16 kHz noise and tones;
- ImageBind's vision and audio encoders against facebookresearch/ImageBind's `imagebind_model.py` (small widths,
  15 video views and 3 audio views per clip, embeddings and their cosine).

The reference sources are not dependencies of bridgedit: fetch them yourself and point to them.

    python benchmarks/backbone_equivalence.py --i3d-source pytorch-i3d/pytorch_i3d.py \\
        --vggish-source torchvggish/torchvggish --imagebind-source ImageBind/imagebind
    # writes benchmarks/results/backbone_equivalence.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch

from bridgedit.evaluation.i3d import InceptionI3d
from bridgedit.evaluation.imagebind import EncoderSize, ImageBindAudioVisual
from bridgedit.evaluation.vggish import VGGish, log_mel_examples

RESULTS = Path(__file__).parent / "results" / "backbone_equivalence.json"


def load_module(name: str, path: Path, package_path: Path | None = None):
    if package_path is not None:  # a package whose __init__ would import what is not installed: load parts only
        package = types.ModuleType(name.split(".")[0])
        package.__path__ = [str(package_path)]
        sys.modules[package.__name__] = package
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def stub_modules(**attributes_by_module) -> None:
    """Import-time dependencies of the reference code that its compared parts do not use (or use trivially)."""
    for name, attributes in attributes_by_module.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        sys.modules.setdefault(name, module)


def randomise(model: torch.nn.Module) -> None:
    """Every weight and batch-norm statistic random, so no part is an identity by accident (ImageBind's fixed audio
    logit scale, a buffer of the post-processing that is not compared, is kept)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not name.endswith("log_logit_scale"):
                noise = torch.randn(tensor.shape, generator=generator) * 0.1
                tensor.copy_(noise.abs() + 0.5 if name.endswith("running_var") else noise + (tensor.ndim == 1) * 0.5)


def max_difference(a: torch.Tensor, b: torch.Tensor) -> dict:
    return {"max_abs_difference": float((a - b).abs().max()), "max_abs_value": float(b.abs().max())}


def compare_i3d(source: Path) -> dict:
    reference = load_module("reference_i3d", source).InceptionI3d(num_classes=400, in_channels=3).eval()
    randomise(reference)
    ours = InceptionI3d().eval()
    ours.load_state_dict(reference.state_dict())  # strict: the same names and shapes
    video = torch.rand(2, 3, 16, 224, 224) * 2 - 1
    with torch.no_grad():
        expected = reference(video).mean(dim=2)  # (N, 400, T') -> averaged over time
        return {"input": list(video.shape), **max_difference(ours(video), expected)}


def compare_vggish(source: Path) -> dict:
    stub_modules(resampy={}, soundfile={})  # the compared functions get 16 kHz arrays: no resampling, no file I/O
    load_module("torchvggish.vggish_params", source / "vggish_params.py", package_path=source)
    load_module("torchvggish.mel_features", source / "mel_features.py")
    examples_of = load_module("torchvggish.vggish_input", source / "vggish_input.py").waveform_to_examples
    vggish = load_module("torchvggish.vggish", source / "vggish.py")
    reference = vggish.VGG(vggish.make_layers()).eval()
    randomise(reference)
    ours = VGGish().eval()
    ours.load_state_dict(reference.state_dict())
    rng = np.random.default_rng(0)
    seconds = np.arange(3 * 16_000) / 16_000
    waves = {
        "noise": rng.standard_normal(len(seconds)) * 0.3,
        "tones": 0.5 * np.sin(2 * np.pi * 440 * seconds) + 0.2 * np.sin(2 * np.pi * 3000 * seconds),
    }
    result = {}
    for label, wave in waves.items():
        expected = examples_of(wave, 16_000, return_tensor=False)
        result[f"log_mel_{label}"] = {
            "examples": list(expected.shape),
            **max_difference(torch.from_numpy(log_mel_examples(wave)), torch.from_numpy(expected)),
        }
    batch = torch.from_numpy(examples_of(waves["noise"], 16_000, return_tensor=False)).float()[:, None]
    with torch.no_grad():
        expected = reference.embeddings[:-1](reference.features(batch).permute(0, 2, 3, 1).flatten(1))
        whole = reference(batch)  # with torchvggish's final ReLU: ours before it, passed through one, must agree
        result["network"] = {
            **max_difference(ours(batch), expected),
            "after_relu": max_difference(torch.relu(ours(batch)), whole),
        }
    return result


def compare_imagebind(source: Path) -> dict:
    class DropPath(torch.nn.Module):  # the reference's stochastic depth is an identity in evaluation
        def __init__(self, *args, **kwargs):
            super().__init__()

        def forward(self, x):
            return x

    stub_modules(
        **{
            "timm": {},
            "timm.layers": {"DropPath": DropPath, "trunc_normal_": torch.nn.init.trunc_normal_},
            "iopath": {},
            "iopath.common": {},
            "iopath.common.file_io": {"g_pathmgr": None},
            "ftfy": {},
            "regex": {},
        }
    )
    models = source / "models"
    load_module("imagebind.models.helpers", models / "helpers.py", package_path=source)
    sys.modules["imagebind.models"] = types.ModuleType("imagebind.models")
    sys.modules["imagebind.models"].__path__ = [str(models)]
    for part in ("helpers", "transformer", "multimodal_preprocessors"):
        load_module(f"imagebind.models.{part}", models / f"{part}.py")
    reference_model = load_module("imagebind.models.imagebind_model", models / "imagebind_model.py")
    small = dict(
        vision_embed_dim=64,
        vision_num_blocks=2,
        vision_num_heads=4,
        audio_embed_dim=48,
        audio_num_blocks=2,
        audio_num_heads=4,
        out_embed_dim=16,
        text_embed_dim=32,
        text_num_blocks=1,
        text_num_heads=2,
        depth_embed_dim=32,
        depth_num_blocks=1,
        depth_num_heads=2,
        thermal_embed_dim=32,
        thermal_num_blocks=1,
        thermal_num_heads=2,
        imu_embed_dim=32,
        imu_num_blocks=1,
        imu_num_heads=2,
    )
    reference = reference_model.ImageBindModel(**small).eval()
    randomise(reference)
    ours = ImageBindAudioVisual(EncoderSize(64, 2, 4), EncoderSize(48, 2, 4), 16).eval()
    ours.load_state_dict(
        {
            k: v
            for k, v in reference.state_dict().items()
            if k.split(".")[1] in ("vision", "audio") and not k.startswith("modality_postprocessors")
        }
    )
    torch.manual_seed(0)
    video, audio = torch.randn(2, 15, 3, 2, 224, 224), torch.randn(2, 3, 1, 128, 204)
    with torch.no_grad():
        expected = reference({"vision": video, "audio": audio})
        ours_video = torch.stack([ours.embed("vision", views).mean(dim=0) for views in video])
        ours_audio = torch.stack([ours.embed("audio", views).mean(dim=0) for views in audio])
    cosine = torch.nn.functional.cosine_similarity
    return {
        "vision": max_difference(ours_video, expected["vision"]),
        # the reference scales audio embeddings by a fixed 20 (a logit scale); the cosine ignores it
        "audio": max_difference(ours_audio, expected["audio"] / 20),
        "ib_va_cosine": max_difference(cosine(ours_video, ours_audio), cosine(expected["vision"], expected["audio"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--i3d-source", type=Path, help="pytorch-i3d's pytorch_i3d.py")
    parser.add_argument("--vggish-source", type=Path, help="torchvggish's torchvggish/ folder")
    parser.add_argument("--imagebind-source", type=Path, help="ImageBind's imagebind/ folder")
    args = parser.parse_args()
    results = {}
    if args.i3d_source:
        results["i3d"] = compare_i3d(args.i3d_source)
    if args.vggish_source:
        results["vggish"] = compare_vggish(args.vggish_source)
    if args.imagebind_source:
        results["imagebind"] = compare_imagebind(args.imagebind_source)
    if not results:
        parser.error("give at least one reference source")
    print(json.dumps(results, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
