"""The authors' released checkpoints (GitHub guankaisi/BridgeDiT, hub Guan123/BridgeDiT) as bridgedit models.

A released checkpoint is a PyTorch Lightning `.ckpt` (a pickle) whose `state_dict` is one flat dict: the trained
tower blocks under diffusers' names (`blocks.N....` of WanTransformer3DModel, `transformer_blocks.N....` of
StableAudioDiTModel) and the bridges' own `state_dict()` under `N....` (../shared/official-release.md). A
DeepSpeed checkpoint keeps the same under `module`, prefixed `video_diffusion.`, `audio_diffusion.` and
`dual_dit_blocks.`.

`convert_official` reads one without running any pickled code, maps every key onto a BridgeDiT with the
released architecture (`config.RELEASED_BRIDGE`), checks every key and shape against towers built on the meta
device from their configs (no tower weights are read), and writes a model folder that
`BridgeDiTPipeline.from_pretrained` loads: the towers by reference, the bridges and trained blocks as safetensors,
and the release's generation settings as the folder's defaults.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .checkpoint import CheckpointError, save_bridge
from .config import RELEASED_BRIDGE, BridgeConfig, ConfigError, ModelConfig, TrainableConfig
from .release import (
    RELEASE_AUDIO_BRIDGE_POINTS,
    RELEASE_FUSION_NAMES,
    RELEASE_GENERATION_DEFAULTS,
    RELEASE_NUM_HEADS,
    RELEASE_VIDEO_BRIDGE_POINTS,
    STABLE_AUDIO_OPEN_1_0,
    WAN_T2V_1_3B,
)

#: a DeepSpeed checkpoint's prefixes of the video tower, the audio tower and the bridges (`load_ckpt_deepspeed`)
_DEEPSPEED_PREFIXES = ("video_diffusion.", "audio_diffusion.", "dual_dit_blocks.")


# ----------------------------------------------------------------------------------------------------
# Reading a checkpoint without running its code
# ----------------------------------------------------------------------------------------------------


class _AttributeDict(dict):
    """Stands in for Lightning's AttributeDict (a dict subclass some checkpoints keep their hyper-parameters in)."""


#: inert data classes a training checkpoint's metadata may hold besides tensors and containers, allowed by name
#: to torch's weights-only unpickler (each is rebuilt as plain data: no constructor of the checkpoint's runs)
_INERT_METADATA = [
    (_AttributeDict, "lightning.fabric.utilities.data.AttributeDict"),
    (_AttributeDict, "pytorch_lightning.utilities.parsing.AttributeDict"),
    (_AttributeDict, "lightning_fabric.utilities.data.AttributeDict"),
]


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's top-level dict, read by torch's weights-only unpickler (tensors, containers and plain
    values; the few inert metadata classes of Lightning allowed by name). A global it refuses (pickled code or an
    unknown class) -> CheckpointError naming it; nothing of the file's code runs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    import pickle
    import zipfile

    try:
        with torch.serialization.safe_globals(_INERT_METADATA):
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=_is_zip(path))
    except pickle.UnpicklingError as error:
        refused = re.search(r"GLOBAL ([\w.]+)", str(error))
        names = [refused.group(1)] if refused else _pickled_globals(path)
        what = f"the global {', '.join(names)}" if names else "a pickle instruction it does not support"
        raise CheckpointError(
            f"{path} was refused: it needs {what}, which the weights-only reader does not run "
            "(a checkpoint holds tensors and plain values only)"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {message}"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a checkpoint dict")
    return data


def _pickled_globals(path: Path) -> list[str]:
    """The globals (module.name) a pickle would import that torch's allow-list lacks, read from its opcodes
    (pickletools decodes, it never executes); for naming them in an error."""
    import pickletools
    import zipfile

    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        if _is_zip(path):
            with zipfile.ZipFile(path) as archive:
                payload = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
        else:
            payload = path.read_bytes()
        names, strings = [], []
        for opcode, argument, _ in pickletools.genops(payload):
            if opcode.name == "GLOBAL":
                names.append(argument.replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(argument, str):
                strings.append(argument)
    except Exception:  # a pickle too broken to decode: the caller says so without names
        return []
    allowed = set(_get_allowed_globals())
    return sorted({name for name in names if name not in allowed and "Storage" not in name})


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(4) == b"PK\x03\x04"


def release_state(checkpoint: dict[str, Any], source: str) -> dict[str, torch.Tensor]:
    """The flat release-layout state (tower blocks under diffusers' names, bridges under `N.`) of a Lightning
    (`state_dict`) or DeepSpeed (`module`, prefixed) checkpoint, or of a bare state dict."""
    if "state_dict" in checkpoint:
        state = checkpoint["state_dict"]
    elif "module" in checkpoint:
        state = {}
        for key, value in checkpoint["module"].items():
            prefix = next((p for p in _DEEPSPEED_PREFIXES if key.startswith(p)), None)
            if prefix is None:
                raise CheckpointError(
                    f"{source}: DeepSpeed key {key!r} is under none of {', '.join(_DEEPSPEED_PREFIXES)}"
                )
            state[key[len(prefix) :]] = value
    else:
        state = checkpoint
    not_tensors = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    if not state or not_tensors:
        raise CheckpointError(f"{source}: no BridgeDiT state dict found (keys that are not tensors: {not_tensors[:5]})")
    return state


# ----------------------------------------------------------------------------------------------------
# The layout read from the keys
# ----------------------------------------------------------------------------------------------------


@dataclass
class ReleasedKeys:
    """A release state split by owner: bridge index -> {key in the bridge block: tensor}, tower block index ->
    {key in the block: tensor}, and what belongs to nobody."""

    bridges: dict[int, dict[str, torch.Tensor]] = field(default_factory=lambda: defaultdict(dict))
    video_blocks: dict[int, dict[str, torch.Tensor]] = field(default_factory=lambda: defaultdict(dict))
    audio_blocks: dict[int, dict[str, torch.Tensor]] = field(default_factory=lambda: defaultdict(dict))
    lora: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @classmethod
    def split(cls, state: dict[str, torch.Tensor]) -> ReleasedKeys:
        keys = cls()
        patterns = (
            (r"blocks\.(\d+)\.(.+)", keys.video_blocks),
            (r"transformer_blocks\.(\d+)\.(.+)", keys.audio_blocks),
            (r"(\d+)\.(.+)", keys.bridges),
        )
        for key, tensor in state.items():
            if "lora_A" in key or "lora_B" in key:
                keys.lora.append(key)
                continue
            for pattern, owner in patterns:
                match = re.fullmatch(pattern, key)
                if match:
                    owner[int(match.group(1))][match.group(2)] = tensor
                    break
            else:
                keys.unknown.append(key)
        return keys

    def fusion(self, requested: str | None) -> str:
        """The fusion kind: additive from its keys; DCA, full attention and the one-way kinds share key names,
        so `requested` decides among them (default DCA). A contradiction is an error."""
        first = self.bridges[min(self.bridges)]
        additive = any(k.startswith(("video_to_audio_proj.", "audio_to_video_proj.")) for k in first)
        if additive and requested not in (None, "additive"):
            raise CheckpointError(
                f"--fusion {requested} contradicts the checkpoint: its bridges are additive fusion "
                "(video_to_audio_proj / audio_to_video_proj, no attention)"
            )
        if not additive and requested == "additive":
            raise CheckpointError(
                "--fusion additive contradicts the checkpoint: its bridges hold attention "
                "projections (attn.q_proj_1 ...), not additive fusion's"
            )
        if requested == "none":
            raise CheckpointError("--fusion none has no bridges to convert")
        return "additive" if additive else (requested or "dca")


def _shape(bridge: dict[str, torch.Tensor], key: str, source: str) -> torch.Size:
    if key not in bridge:
        raise CheckpointError(f"{source}: bridge 0 has no {key!r}: not a released BridgeDiT bridge")
    return bridge[key].shape


def bridge_widths(keys: ReleasedKeys, fusion: str, source: str) -> dict[str, Any]:
    """What bridge 0's weights say of the architecture: attention's width (num_qk_channels), the MLP ratio and the
    width of the video stream's condition. The streams' own widths are checked against the towers with every shape."""
    first = keys.bridges[min(keys.bridges)]
    video_width = _shape(first, "mlp_1.fc2.weight", source)[0]
    return {
        "mlp_ratio": _shape(first, "mlp_1.fc1.weight", source)[0] / video_width,
        "video_condition_dim": _shape(first, "adaln_modulation_1.1.weight", source)[1],
        # additive fusion has no attention: its width is only the config's, the streams run at the towers' widths
        "width": _shape(first, "mlp_2.fc2.weight", source)[0]
        if fusion == "additive"
        else _shape(first, "attn.q_proj_1.weight", source)[0],
    }


# ----------------------------------------------------------------------------------------------------
# Key mapping: release -> bridgedit
# ----------------------------------------------------------------------------------------------------


def _linear(source: str, target: str) -> dict[str, str]:
    return {f"{source}.weight": f"{target}.weight", f"{source}.bias": f"{target}.bias"}


def bridge_key_map(fusion: str) -> tuple[dict[str, list[str]], set[str]]:
    """{release key in one bridge: [bridgedit keys in `bridges.blocks.N`]} and the release keys its own forward
    never reads (kept in its checkpoints, unused by design: the one-way kinds' unused K/V projections).

    Release streams: 1 = video, 2 = audio. DCA: video queries audio with (q_proj_1; k_proj_2, v_proj_2; o_proj_1),
    audio queries video with (q_proj_2; k_proj_1, v_proj_1; o_proj_2). V2A: video self-attends with
    (q_proj_1, k_proj_1, v_proj_1; o_proj_1) and audio queries the same video keys and values (q_proj_2; k_proj_1,
    v_proj_1; o_proj_2): the shared projections go to both of bridgedit's attentions. A2V mirrors it."""
    mapping: dict[str, list[str]] = defaultdict(list)

    def add(pairs: dict[str, str]) -> None:
        for source, target in pairs.items():
            mapping[source].append(target)

    for stream, name in ((1, "video"), (2, "audio")):
        add(_linear(f"adaln_modulation_{stream}.1", f"{name}.modulation.linear"))
        add(_linear(f"mlp_{stream}.fc1", f"{name}.mlp.net.0.proj"))
        add(_linear(f"mlp_{stream}.fc2", f"{name}.mlp.net.2"))
    unused: set[str] = set()
    if fusion == "additive":
        add(_linear("video_to_audio_proj", "mixer.video_to_audio"))
        add(_linear("audio_to_video_proj", "mixer.audio_to_video"))
        return mapping, unused

    def attention(target: str, query: int, key_value: int, output: int) -> None:
        add(_linear(f"attn.q_proj_{query}", f"mixer.{target}.to_q"))
        add(_linear(f"attn.k_proj_{key_value}", f"mixer.{target}.to_k"))
        add(_linear(f"attn.v_proj_{key_value}", f"mixer.{target}.to_v"))
        add(_linear(f"attn.o_proj_{output}", f"mixer.{target}.to_out.0"))

    if fusion == "dca":
        attention("audio_to_video", query=1, key_value=2, output=1)
        attention("video_to_audio", query=2, key_value=1, output=2)
    elif fusion == "full_attention":
        for projection, (video, audio) in {
            "q": ("to_q", "add_q_proj"),
            "k": ("to_k", "add_k_proj"),
            "v": ("to_v", "add_v_proj"),
            "o": ("to_out.0", "to_add_out"),
        }.items():
            add(_linear(f"attn.{projection}_proj_1", f"mixer.joint.{video}"))
            add(_linear(f"attn.{projection}_proj_2", f"mixer.joint.{audio}"))
    elif fusion == "v2a":  # the audio stream is conditioned on the video stream
        attention("self_attention", query=1, key_value=1, output=1)
        attention("cross", query=2, key_value=1, output=2)
        unused = {f"attn.{p}_proj_2.{s}" for p in "kv" for s in ("weight", "bias")}
    else:  # a2v
        attention("cross", query=1, key_value=2, output=1)
        attention("self_attention", query=2, key_value=2, output=2)
        unused = {f"attn.{p}_proj_1.{s}" for p in "kv" for s in ("weight", "bias")}
    return mapping, unused


def _tower_policy(blocks: dict[str, list[int]], depths: dict[str, int]) -> TrainableConfig:
    """The freezing policy whose trained blocks are the checkpoint's: the first N of each tower (the release) or the
    last N (the paper's Table 5)."""
    counts = {name: len(indices) for name, indices in blocks.items()}
    first = all(indices == list(range(len(indices))) for indices in blocks.values())
    last = all(indices == list(range(depths[name] - len(indices), depths[name])) for name, indices in blocks.items())
    if first and any(counts.values()):
        return TrainableConfig(
            policy="bridges+first_blocks", video_first_blocks=counts["video"], audio_first_blocks=counts["audio"]
        )
    if last and any(counts.values()):
        return TrainableConfig(
            policy="bridges+last_blocks", video_last_blocks=counts["video"], audio_last_blocks=counts["audio"]
        )
    if not any(counts.values()):
        return TrainableConfig(policy="bridges")
    raise CheckpointError(
        f"the checkpoint's tower blocks (video {blocks['video']}, audio {blocks['audio']}) are "
        "neither the first nor the last blocks of each tower"
    )


# ----------------------------------------------------------------------------------------------------
# Conversion
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conversion:
    folder: Path
    config: ModelConfig
    tensors: int
    ignored: list[str]  # release keys its own forward never reads


def _tower_configs(video_model: str, audio_model: str) -> tuple[dict, dict]:
    from diffusers import StableAudioDiTModel, WanTransformer3DModel

    configs = []
    for name, model_class, reference in (
        ("video", WanTransformer3DModel, video_model),
        ("audio", StableAudioDiTModel, audio_model),
    ):
        try:
            configs.append(model_class.load_config(reference, subfolder="transformer"))
        except (OSError, ValueError) as error:
            raise FileNotFoundError(
                f"cannot read the {name} tower's transformer config from {reference!r} "
                f"({str(error).splitlines()[0]}). Give a local {'WanPipeline' if name == 'video' else 'StableAudioPipeline'} "
                "folder, or a hub id with downloads allowed (unset HF_HUB_OFFLINE)"
            ) from None
    return configs[0], configs[1]


def _meta_model(video_config: dict, audio_config: dict, config: ModelConfig):
    from diffusers import StableAudioDiTModel, WanTransformer3DModel

    from .model import BridgeDiT

    with torch.device("meta"):
        return BridgeDiT(
            WanTransformer3DModel.from_config(video_config), StableAudioDiTModel.from_config(audio_config), config
        )


def convert_official(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    fusion: str | None = None,
    num_heads: int = RELEASE_NUM_HEADS,
    video_bridge_points: tuple[int, ...] = RELEASE_VIDEO_BRIDGE_POINTS,
    audio_bridge_points: tuple[int, ...] = RELEASE_AUDIO_BRIDGE_POINTS,
    video_model: str = WAN_T2V_1_3B,
    audio_model: str = STABLE_AUDIO_OPEN_1_0,
) -> Conversion:
    """Convert a released checkpoint (a local file) into the model folder `out`. Every key is mapped and every
    shape checked before anything is written; any problem -> one CheckpointError listing them, `out` untouched."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not an empty folder")
    source = str(checkpoint)
    keys = ReleasedKeys.split(release_state(read_checkpoint(checkpoint), source))
    if keys.lora:
        raise CheckpointError(
            f"{source} holds LoRA adapters ({len(keys.lora)} peft lora_A/lora_B keys, e.g. {keys.lora[0]}); their "
            "alpha is not stored in the checkpoint, so peft's scaling alpha / rank cannot be known: not converted"
        )
    if not keys.bridges:
        raise CheckpointError(f"{source} holds no bridge blocks (keys N.attn... / N.mlp_1...)")
    chosen = keys.fusion(fusion)
    widths = bridge_widths(keys, chosen, source)
    # a local tower folder is referenced by its absolute path, so the model loads from any working directory
    video_model, audio_model = (
        str(Path(ref).resolve()) if Path(ref).is_dir() else ref for ref in (video_model, audio_model)
    )
    video_config, audio_config = _tower_configs(video_model, audio_model)
    depths = {"video": video_config["num_layers"], "audio": audio_config["num_layers"]}
    blocks = {"video": sorted(keys.video_blocks), "audio": sorted(keys.audio_blocks)}
    config = ModelConfig(
        bridge=BridgeConfig(
            fusion=chosen,
            video_blocks=tuple(video_bridge_points),
            audio_blocks=tuple(audio_bridge_points),
            width=widths["width"],
            num_heads=num_heads,
            mlp_ratio=widths["mlp_ratio"],
            timestep_embed_dim=widths["video_condition_dim"],
            **RELEASED_BRIDGE,
        ),
        trainable=_tower_policy(blocks, depths),
    )
    if len(keys.bridges) != config.bridge.num_bridges or sorted(keys.bridges) != list(range(len(keys.bridges))):
        raise CheckpointError(
            f"{source} holds bridges {sorted(keys.bridges)}, but {config.bridge.num_bridges} bridge "
            f"points were given (--video-bridge-points {','.join(map(str, video_bridge_points))})"
        )
    model = _meta_model(video_config, audio_config, config)
    state, ignored = _mapped_state(model, keys, source)
    _write_folder(out, model, state, video_model, audio_model, source, chosen)
    return Conversion(folder=out, config=config, tensors=len(state), ignored=ignored)


def _mapped_state(model, keys: ReleasedKeys, source: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The BridgeDiT's trainable state (keyed by module path) from the release keys, every key and shape checked."""
    paths = {id(module): path for path, module in model.named_modules()}
    expected = {
        f"{paths[id(module)]}.{key}": value.shape
        for module in model.trainable_modules().values()
        for key, value in module.state_dict().items()
    }
    mapping, unused = bridge_key_map(model.config.bridge.fusion)
    state, problems, ignored, misshaped = {}, {"unknown": list(keys.unknown), "shape": []}, [], set()

    def place(target: str, tensor: torch.Tensor, release_key: str) -> None:
        if target not in expected:
            problems["unknown"].append(release_key)
        elif tuple(tensor.shape) != tuple(expected[target]):
            problems["shape"].append(f"{release_key} {tuple(tensor.shape)} (expected {tuple(expected[target])})")
            misshaped.add(target)
        else:
            state[target] = tensor

    for index, bridge in keys.bridges.items():
        for key, tensor in bridge.items():
            if key in unused:
                ignored.append(f"{index}.{key}")
            elif key in mapping:
                for copy, target in enumerate(mapping[key]):  # a projection the release shares is stored twice
                    place(f"bridges.blocks.{index}.{target}", tensor.clone() if copy else tensor, f"{index}.{key}")
            else:
                problems["unknown"].append(f"{index}.{key}")
    for tower, blocks, release_prefix in (
        ("video_tower", keys.video_blocks, "blocks"),
        ("audio_tower", keys.audio_blocks, "transformer_blocks"),
    ):
        attribute = "blocks" if tower == "video_tower" else "transformer_blocks"
        for index, block in blocks.items():
            for key, tensor in block.items():
                place(f"{tower}.transformer.{attribute}.{index}.{key}", tensor, f"{release_prefix}.{index}.{key}")
    missing = sorted(set(expected) - set(state) - misshaped)
    if missing or problems["unknown"] or problems["shape"]:
        parts = [
            f"{len(v)} {k} key(s): {', '.join(v[:6])}{' ...' if len(v) > 6 else ''}"
            for k, v in (("missing", missing), ("unknown", problems["unknown"]), ("mis-shaped", problems["shape"]))
            if v
        ]
        raise CheckpointError(
            f"{source} does not fit the released architecture ({model.config.bridge.fusion}): " + "; ".join(parts)
        )
    return state, ignored


def _write_folder(
    out: Path, model, state: dict[str, torch.Tensor], video_model: str, audio_model: str, source: str, fusion: str
) -> None:
    """Write the model folder under a temporary name beside `out`, then rename it: `out` is whole or absent."""
    from .pipeline import write_model_index

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_bridge(model, staging / "bridge", state)
        provenance = {"checkpoint": Path(source).name, "fusion_type": RELEASE_FUSION_NAMES[fusion]}
        write_model_index(
            staging,
            video=video_model,
            audio=audio_model,
            generation_defaults=RELEASE_GENERATION_DEFAULTS,
            extra={"converted_from_release": provenance},
        )
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def summary(conversion: Conversion) -> dict[str, Any]:
    bridge, trainable = conversion.config.bridge, conversion.config.trainable
    return {
        "folder": str(conversion.folder),
        "fusion": bridge.fusion,
        "bridges": bridge.num_bridges,
        "width": bridge.width,
        "num_heads": bridge.num_heads,
        "trainable": trainable.policy,
        "tensors": conversion.tensors,
        "ignored_release_keys": conversion.ignored,
        "bridgedit_version": __version__,
    }


def to_json(conversion: Conversion) -> str:
    return json.dumps(summary(conversion), indent=2)
