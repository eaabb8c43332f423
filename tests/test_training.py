"""Training: the loss (Eq. 4-6) learns, resume is exact, two processes stay identical, frozen stays frozen."""

import os
import subprocess
import sys
import textwrap
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import free_port, two_cpu_processes
from safetensors.torch import load_file
from scipy.stats import binomtest

from bridgedit import tiny
from bridgedit.config import ConfigError
from bridgedit.data.cache import cache_dataset, load_cache_info
from bridgedit.data.dataset import CachedClips
from bridgedit.synthetic import make_dataset
from bridgedit.training.config import TrainConfig
from bridgedit.training.trainer import (
    Trainer,
    batch_conditions,
    build_pipeline,
    cpu_has_native_bf16,
    diffusion_loss,
    draw_caption_drops,
    rank_batches,
    sample_timesteps,
)

pytestmark = pytest.mark.slow  # trainings, encoders, processes: `make test-fast` leaves this file out

TEXT_TOKENS = 32


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    make_dataset(root / "dataset", clips=6, seed=1)
    cache_dataset(
        tiny.bridgedit_pipeline(seed=0),
        root / "dataset",
        root / "dataset" / "cache",
        model="tiny",
        max_sequence_length=TEXT_TOKENS,
        progress=False,
    )
    return root


def _config(root: Path, run: str, **train) -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "model": {"base": "tiny"},
            "data": {"dataset": str(root / "dataset"), "max_sequence_length": TEXT_TOKENS},
            "optim": {"lr": 1e-3, "warmup_steps": 2, "min_lr": 1e-4},
            "train": {"steps": 6, "batch_size": 2, "mixed_precision": "no", "gradient_checkpointing": False, **train},
            "checkpoint": {"dir": str(root / run), "every": 3},
            "log": {"every": 100},
        }
    )


def _trainable(model):
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def test_overfits_one_batch(data):
    """With its noise and timesteps held fixed, one batch is memorised: the loss falls more than 10x."""
    from bridgedit.config import ModelConfig, TrainableConfig
    from bridgedit.pipeline import BridgeDiTPipeline

    tiny_pipe = tiny.bridgedit_pipeline(seed=0)
    everything = ModelConfig(bridge=tiny_pipe.model.config.bridge, trainable=TrainableConfig(policy="towers"))
    pipe = BridgeDiTPipeline.from_pipes(tiny_pipe.video_pipe, tiny_pipe.audio_pipe, everything)
    clips = CachedClips(data / "dataset", data / "dataset" / "cache")
    batch = clips.batch([0, 1])
    info = load_cache_info(data / "dataset" / "cache")
    no_drop = torch.zeros(2, dtype=torch.bool)
    conditions = batch_conditions(pipe, batch, no_drop, no_drop, clips.null_video_text, info, torch.device("cpu"))
    settings = {"distribution": "uniform", "coupling": "coupled"}
    optimizer = torch.optim.AdamW([p for p in pipe.model.parameters() if p.requires_grad], lr=3e-3)
    pipe.model.train()
    losses = []
    for _ in range(150):
        loss, _ = diffusion_loss(pipe.model, pipe, batch, conditions, torch.Generator().manual_seed(0), settings, "cpu")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_resume_continues_exactly(data):
    straight = Trainer(_config(data, "straight"), progress=False)
    straight.run()
    first = Trainer(_config(data, "split"), progress=False)
    first.run(stop_at=3)  # killed after the checkpoint at step 3
    resumed = Trainer(_config(data, "split"), resume="latest", progress=False)
    assert resumed.step == 3
    result = resumed.run()
    assert result.steps == 6 and len(result.history) == 3
    a, b = _trainable(straight.model), _trainable(resumed.model)
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] - b[name]).abs().max() <= 1e-6, name


def test_a_checkpoint_folder_is_complete_or_absent(data, monkeypatch):
    """A save killed mid-way leaves only a hidden partial folder, never named by `latest`: the run resumes from the
    last complete checkpoint, and its next save replaces the partial one."""
    from bridgedit.training import trainer as trainer_module

    Trainer(_config(data, "killed"), progress=False).run(stop_at=3)
    folder = data / "killed"

    def killed_while_saving(*args, **kwargs):
        raise KeyboardInterrupt

    real_save = trainer_module.save_training_state
    monkeypatch.setattr(trainer_module, "save_training_state", killed_while_saving)
    with pytest.raises(KeyboardInterrupt):
        Trainer(_config(data, "killed"), resume="latest", progress=False).run()
    assert sorted(p.name for p in folder.iterdir()) == [".checkpoint-000006.partial", "checkpoint-000003", "latest"]
    assert (folder / "latest").read_text() == "checkpoint-000003"
    monkeypatch.setattr(trainer_module, "save_training_state", real_save)
    resumed = Trainer(_config(data, "killed"), resume="latest", progress=False)
    assert resumed.step == 3
    resumed.run()
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-000003", "checkpoint-000006", "latest"]
    assert (folder / "latest").read_text() == "checkpoint-000006"


def test_frozen_parameters_stay_put_and_checkpoints_load(data):
    trainer = Trainer(
        replace(
            _config(data, "frozen"),
            model=replace(_config(data, "frozen").model, trainable={"policy": "bridges+last_blocks"}),
        ),
        progress=False,
    )
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    result = trainer.run()
    for name, param in trainer.model.named_parameters():
        changed = not torch.equal(before[name], param)
        assert changed == param.requires_grad, name
    from bridgedit import BridgeDiTPipeline

    loaded = BridgeDiTPipeline.from_pretrained(result.checkpoint)
    for name, param in loaded.model.state_dict().items():
        assert torch.equal(param, trainer.model.state_dict()[name].cpu()), name
    assert all(k in result.history[0] for k in ("loss_video", "loss_audio", "lr", "grad_norm", "samples_per_s"))


def test_new_bridges_start_from_the_run_seed(data, tmp_path):
    """Bridges a config adds to a saved model are drawn from train.seed alone: the same whatever the process drew
    before (a benchmark's worker trains several runs in one process), others for another seed."""
    tiny.bridgedit_pipeline(seed=0).save_pretrained(tmp_path / "base", copy_towers=True)
    base = _config(data, "unused")

    def new_bridges(seed: int, earlier_draws: int) -> dict[str, torch.Tensor]:
        torch.randn(earlier_draws)  # whatever ran earlier in this process
        config = replace(
            base,
            model=replace(base.model, base=str(tmp_path / "base"), bridge={"fusion": "v2a"}),
            train=replace(base.train, seed=seed),
        )
        bridges = build_pipeline(config).model.bridges
        assert bridges.config.fusion == "v2a"
        return bridges.state_dict()

    first, after_other_draws, other_seed = new_bridges(0, 1), new_bridges(0, 1000), new_bridges(1, 1)
    assert first.keys() == after_other_draws.keys() == other_seed.keys()
    assert all(torch.equal(first[name], after_other_draws[name]) for name in first)
    assert not all(torch.equal(first[name], other_seed[name]) for name in first)


def test_a_float16_model_folder_trains_in_float32(data, tmp_path):
    """A base saved in float16 (as the bundled demo model is) loads in float32: its cache is encoded and its bridges
    train (it failed with mixed Half and Float matrices in the cache's text projection)."""
    tiny.bridgedit_pipeline(seed=0).to(dtype=torch.float16).save_pretrained(tmp_path / "base", copy_towers=True)
    base = _config(data, "unused")
    config = replace(
        base,
        model=replace(base.model, base=str(tmp_path / "base")),
        data=replace(base.data, cache=str(tmp_path / "cache")),
        train=replace(base.train, steps=2),
        checkpoint=replace(base.checkpoint, dir=str(tmp_path / "run")),
    )
    assert {p.dtype for p in build_pipeline(config).model.parameters()} == {torch.float32}
    result = Trainer(config).run()
    assert len(result.history) == 2 and all(torch.isfinite(torch.tensor(row["loss_audio"])) for row in result.history)


def _rank_script(data: Path, tmp_path: Path, run: str) -> Path:
    """A script that trains 3 steps of batch 1 per process under `accelerate launch` and saves each rank's trainable
    parameters as RUN-rankN.safetensors."""
    script = tmp_path / f"{run}.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        from safetensors.torch import save_file
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_training import _config, _trainable
        from bridgedit.training.trainer import Trainer
        from pathlib import Path
        trainer = Trainer(_config(Path({str(data)!r}), {run!r}, steps=3, batch_size=1), progress=False)
        trainer.run()
        rank = trainer.accelerator.process_index
        save_file({{k: v.contiguous() for k, v in _trainable(trainer.model).items()}}, {str(tmp_path)!r} + f"/{run}-rank{{rank}}.safetensors")
    """)
    )
    return script


def _launch_all(commands: list[list[str]]) -> None:
    """Start every command at once (the processes of one group) and wait for all."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    processes = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for c in commands
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]


def test_two_processes_keep_identical_parameters(data, tmp_path):
    _launch_all([[*two_cpu_processes(), str(_rank_script(data, tmp_path, "ddp"))]])
    rank0, rank1 = (load_file(str(tmp_path / f"ddp-rank{rank}.safetensors")) for rank in (0, 1))
    initial = _trainable(tiny.bridgedit_pipeline(seed=0).model)
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    assert any(not torch.equal(rank0[n], initial[n]) for n in rank0)  # and they did train


def test_the_multi_node_config_in_miniature_trains_as_one_machine(data, tmp_path):
    """configs/accelerate/multinode.yaml with two "nodes" of one CPU process each, on this machine: the two nodes end
    with the parameters of two processes on one machine (the same global batches, gradients averaged over both)."""
    _launch_all([[*two_cpu_processes(), str(_rank_script(data, tmp_path, "one-machine"))]])
    script, port = _rank_script(data, tmp_path, "two-nodes"), str(free_port())
    node = [
        str(Path(sys.executable).parent / "accelerate"),
        "launch",
        "--config_file",
        str(CONFIGS / "accelerate" / "multinode.yaml"),
        "--num_machines",
        "2",
        "--num_processes",
        "2",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        port,
    ]
    _launch_all([[*node, "--machine_rank", str(rank), str(script)] for rank in (0, 1)])
    one_machine = load_file(str(tmp_path / "one-machine-rank0.safetensors"))
    for rank in (0, 1):
        on_node = load_file(str(tmp_path / f"two-nodes-rank{rank}.safetensors"))
        assert on_node.keys() == one_machine.keys()
        for name in on_node:
            torch.testing.assert_close(on_node[name], one_machine[name], rtol=1e-6, atol=1e-7)


def test_caption_dropout_rate_and_independence():
    generator = torch.Generator().manual_seed(0)
    video, audio = draw_caption_drops(40_000, 0.1, 0.25, generator)
    assert binomtest(int(video.sum()), 40_000, 0.1).pvalue > 1e-3
    assert binomtest(int(audio.sum()), 40_000, 0.25).pvalue > 1e-3
    assert binomtest(int((video & audio).sum()), 40_000, 0.025).pvalue > 1e-3  # independent per modality


def test_dropped_captions_become_each_towers_null_condition(data):
    pipe = tiny.bridgedit_pipeline(seed=0)
    clips = CachedClips(data / "dataset", data / "dataset" / "cache")
    info = load_cache_info(data / "dataset" / "cache")
    batch = clips.batch([0, 1])
    video, audio = batch_conditions(
        pipe,
        batch,
        torch.tensor([True, False]),
        torch.tensor([False, True]),
        clips.null_video_text,
        info,
        torch.device("cpu"),
    )
    kept_video, kept_audio = batch_conditions(
        pipe,
        batch,
        torch.tensor([False, False]),
        torch.tensor([False, False]),
        clips.null_video_text,
        info,
        torch.device("cpu"),
    )
    null = pipe.encode_prompts([""], [""], audio_seconds=batch.seconds[0], max_sequence_length=TEXT_TOKENS)
    assert torch.equal(video.text_states[0], null.null_video.text_states[0])  # Wan: the encoded ""
    assert torch.equal(video.text_states[1], kept_video.text_states[1])
    assert torch.equal(audio.text_states[0], kept_audio.text_states[0])
    assert torch.count_nonzero(audio.text_states[1]) == 0  # Stable Audio: zeros, duration included
    assert torch.equal(audio.global_states, kept_audio.global_states)


def test_timestep_sampling():
    generator = torch.Generator().manual_seed(0)
    t_video, t_audio = sample_timesteps(1000, {"distribution": "uniform", "coupling": "coupled"}, generator)
    assert torch.equal(t_video, 1000 * t_audio) and 0 <= t_audio.min() and t_audio.max() <= 1
    t_video, t_audio = sample_timesteps(
        1000,
        {"distribution": "logit_normal", "coupling": "independent", "logit_mean": 0.0, "logit_std": 1.0},
        generator,
    )
    assert not torch.allclose(t_video, 1000 * t_audio) and abs(t_audio.mean().item() - 0.5) < 0.05


def test_every_process_gets_its_own_share_of_each_batch():
    shares = [rank_batches(10, 2, 2, rank, seed=0, epoch=0) for rank in range(2)]
    assert len(shares[0]) == len(shares[1]) == 2  # 10 clips, global batch 4: 2 batches, remainder dropped
    flat = [i for share in shares for batch in share for i in batch]
    assert len(set(flat)) == 8
    assert rank_batches(10, 2, 2, 0, seed=0, epoch=1) != shares[0]  # a new order every epoch


@pytest.mark.parametrize(
    "change, message",
    [
        ({"optimizer": {}}, "unknown section"),
        ({"train": {"stepz": 3}}, "unknown key\\(s\\) in train: 'stepz'"),
        ({"train": {"mixed_precision": "fp8"}}, "mixed_precision"),
        ({"train": {"timesteps": {"coupling": "loose"}}}, "coupling"),
        ({"data": {"dataset": "x", "captions": "omni"}}, "captions"),
        ({"model": {"base": "tiny", "video": "a", "audio": "b"}}, "either `base`"),
    ],
)
def test_config_errors_are_named(change, message):
    base = {"model": {"base": "tiny"}, "data": {"dataset": "somewhere"}}
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict({**base, **change})


def test_table_5_defaults():
    config = TrainConfig.from_dict({"model": {"base": "tiny"}, "data": {"dataset": "x"}})
    assert (config.optim.lr, config.optim.weight_decay, config.optim.betas) == (5e-5, 1e-3, (0.9, 0.95))
    assert (config.optim.warmup_steps, config.optim.min_lr, config.train.steps) == (1000, 1e-6, 15_000)
    assert config.train.caption_dropout == {"video": 0.1, "audio": 0.1}
    assert config.train.mixed_precision == "bf16" and config.train.gradient_checkpointing


CONFIGS = Path(__file__).parent.parent / "configs"


def test_smoke_config_trains_from_nothing(tmp_path, monkeypatch, capsys):
    """configs/smoke.yaml makes its dataset, caches it and trains; here shortened to 20 steps."""
    from bridgedit.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", str(CONFIGS / "smoke.yaml"), "--steps", "20"]) == 0
    out = capsys.readouterr().out
    assert "loss" in out and "checkpoint: outputs/smoke/run/checkpoint-000020" in out
    from bridgedit import BridgeDiTPipeline

    pipe = BridgeDiTPipeline.from_pretrained(tmp_path / "outputs/smoke/run/checkpoint-000020")
    assert pipe.model.config.trainable.policy == "towers"


def test_table_5_config_file():
    config = TrainConfig.from_yaml(CONFIGS / "bridgedit-table5.yaml")
    model = config.model.model_config()
    assert model.bridge.video_blocks == (3, 7, 11, 15) and model.bridge.audio_blocks == (2, 5, 8, 11)
    assert (model.bridge.width, model.bridge.num_heads, model.bridge.timestep_embed_dim) == (1536, 12, 1536)
    assert (model.trainable.video_last_blocks, model.trainable.audio_last_blocks) == (5, 5)
    assert (config.optim.lr, config.optim.warmup_steps, config.optim.min_lr, config.train.steps) == (
        5e-5,
        1000,
        1e-6,
        15000,
    )
    assert config.train.mixed_precision == "bf16" and config.train.caption_dropout == {"video": 0.1, "audio": 0.1}


@pytest.mark.skipif(
    not (torch.cuda.is_available() or cpu_has_native_bf16()),
    reason="needs a CUDA GPU or a CPU with native bf16 (AVX512-BF16 or AMX)",
)
@pytest.mark.parametrize("checkpointing", [False, True])
def test_bf16_training_with_frozen_weights_in_bf16(data, checkpointing):
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()  # earlier tests in this process set float32; one run per process otherwise
    base = _config(data, f"bf16-{checkpointing}")
    config = replace(
        base,
        train=replace(
            base.train, mixed_precision="bf16", frozen_dtype="bfloat16", steps=4, gradient_checkpointing=checkpointing
        ),
        model=replace(base.model, trainable={"policy": "bridges+last_blocks"}),
    )
    trainer = Trainer(config, progress=False)
    assert trainer.accelerator.mixed_precision == "bf16"
    model = trainer.model
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    assert any(p.dtype == torch.bfloat16 for p in model.parameters() if not p.requires_grad)
    assert model.video_tower.blocks[0].scale_shift_table.dtype == torch.float32  # diffusers keeps it in fp32
    assert model.video_tower.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = trainer.run()  # conftest's fresh_accelerator_state resets the precision for later tests
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result.history)
    for name, param in model.named_parameters():
        assert (not torch.equal(before[name], param)) == param.requires_grad, name
    if trainer.device.type == "cpu" and not checkpointing:  # attention ran as bf16 matrix products, in every block
        assert trainer.attention.calls >= 4 * 2 * model.video_tower.num_blocks
    else:  # a GPU's fused kernels; and on a CPU, checkpointing recomputes the forward outside the mode
        assert isinstance(trainer.attention, nullcontext)


def test_bf16_on_a_cpu_without_native_bf16_falls_back_to_float32(data, monkeypatch, caplog):
    from accelerate.state import AcceleratorState

    from bridgedit.training import trainer as trainer_module

    if torch.cuda.is_available():
        pytest.skip("on a GPU bf16 is always used")
    monkeypatch.setattr(trainer_module, "cpu_has_native_bf16", lambda: False)
    AcceleratorState._reset_state()
    base = _config(data, "bf16-fallback")
    config = replace(base, train=replace(base.train, mixed_precision="bf16", frozen_dtype="bfloat16", steps=1))
    with caplog.at_level("WARNING"):
        trainer = Trainer(config, progress=False)
    precision = trainer.accelerator.mixed_precision
    assert precision == "no"
    assert "float32 instead of bf16: this CPU has no native bf16" in caplog.text
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_official_config_file_is_the_release_recipe():
    from bridgedit.config import RELEASED_BRIDGE

    config = TrainConfig.from_yaml(CONFIGS / "bridgedit-official.yaml")
    model = config.model.model_config()
    assert all(getattr(model.bridge, key) == value for key, value in RELEASED_BRIDGE.items())
    assert (model.bridge.video_blocks, model.bridge.audio_blocks) == ((3, 7, 11, 15), (2, 5, 8, 11))
    assert model.trainable.policy == "bridges+first_blocks"
    assert (model.trainable.video_first_blocks, model.trainable.audio_first_blocks) == (5, 5)
    assert (config.optim.lr, config.optim.weight_decay, config.optim.betas) == (5e-5, 1e-3, (0.9, 0.95))
    assert (config.optim.schedule, config.optim.warmup_steps, config.optim.max_grad_norm) == ("constant", 1000, None)
    assert config.train.caption_dropout == {"video": 0.0, "audio": 0.0}
    assert config.train.timesteps["distribution"] == "sobol" and config.train.timesteps["coupling"] == "integer"


def test_release_timestep_sampling():
    """Sobol points and the release's integer video timestep long(999 t), the same for the same generator."""
    settings = {"distribution": "sobol", "coupling": "integer"}
    t_video, t_audio = sample_timesteps(64, settings, torch.Generator().manual_seed(0))
    again, _ = sample_timesteps(64, settings, torch.Generator().manual_seed(0))
    assert torch.equal(t_video, again) and torch.equal(t_video, torch.floor(999 * t_audio))
    assert t_video.max() <= 998 and 0 <= t_audio.min() and t_audio.max() < 1
    # a scrambled Sobol sequence fills [0, 1) evenly: each eighth holds 64 / 8 points
    assert torch.histc(t_audio, bins=8, min=0, max=1).tolist() == [8.0] * 8


def test_constant_lr_schedule_after_warmup(data):
    """optim.schedule constant: the release's LambdaLR, step / warmup during the warm-up, then the base lr."""
    config = _config(data, "constant")
    trainer = Trainer(replace(config, optim=replace(config.optim, schedule="constant")), progress=False)
    lrs = []
    for _ in range(5):
        lrs.append(trainer.scheduler.get_last_lr()[0])
        trainer.optimizer.step()
        trainer.scheduler.step()
    assert lrs == pytest.approx([0.0, 5e-4, 1e-3, 1e-3, 1e-3])  # lr 1e-3, 2 warm-up steps, no decay
