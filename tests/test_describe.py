"""`bridgedit describe`: real-size figures on the meta device, checked against the public configs and by hand."""

import json
import re

import pytest

from bridgedit.cli.main import main
from bridgedit.config import ConfigError
from bridgedit.describe import describe
from bridgedit.presets import PRESETS, get_preset

pytestmark = pytest.mark.slow  # real-size models built on the meta device, FLOPs counted: seconds each

REAL = "wan2.1-t2v-1.3b+stable-audio-open-1.0"  # the authors' released architecture
TABLE5 = "wan2.1-t2v-1.3b+stable-audio-open-1.0-table5"  # bridgedit's first real-size architecture


@pytest.fixture(scope="module")
def real_dca():
    return describe(get_preset(REAL), fusion="dca")


@pytest.fixture(scope="module")
def table5_dca():
    return describe(get_preset(TABLE5), fusion="dca")


def test_tower_parameters_match_the_public_models(real_dca):
    # figures of the public checkpoints (issue #2): Wan2.1-T2V-1.3B 1419.0 M, Stable Audio Open 1.0 DiT 1056.9 M
    assert round(real_dca.parameters["video_tower"] / 1e6, 1) == 1419.0
    assert round(real_dca.parameters["audio_tower"] / 1e6, 1) == 1056.9


def test_token_counts_at_default_sizes(real_dca, table5_dca):
    assert real_dca.lengths.video_tokens == table5_dca.lengths.video_tokens == 21 * 30 * 52
    assert real_dca.lengths.audio_tokens == 116  # the release: int(5.4 * 44100 / 2048)
    assert table5_dca.lengths.audio_tokens == 117  # bridgedit's first models: the whole clip


@pytest.mark.parametrize("architecture", ["release", "table5"])
def test_trainable_parameters_are_bridges_plus_five_blocks(real_dca, table5_dca, architecture):
    # one Wan 1.3B block and one Stable Audio DiT block, counted from their published shapes
    d, ffn = 1536, 8960
    wan_block = (
        2 * (4 * d * d + 4 * d)  # self- and cross-attention q/k/v/out with biases
        + 2 * 2 * d  # their RMS q/k norms
        + (d * ffn + ffn)
        + (ffn * d + d)  # feed-forward
        + 2 * d  # cross-attention LayerNorm (affine)
        + 6 * d  # scale_shift_table
    )
    kv_heads, head_dim, cross = 12, 64, 768  # Stable Audio Open: 24 query heads, 12 key/value heads of 64
    sa_block = (
        3 * 2 * d  # three affine LayerNorms
        + 4 * d * d  # self-attention q/k/v/out, no biases
        + d * d
        + 2 * cross * kv_heads * head_dim
        + d * d  # cross-attention q, k/v from 768, out
        + (d * 2 * 4 * d + 2 * 4 * d)
        + (4 * d * d + d)  # SwiGLU feed-forward
    )
    params = (real_dca if architecture == "release" else table5_dca).parameters
    assert params["trainable"] == params["bridges"] + 5 * wan_block + 5 * sa_block  # the first five or the last five


@pytest.mark.parametrize("architecture", ["release", "table5"])
def test_dca_bridge_flops_match_a_hand_count(real_dca, table5_dca, architecture):
    """2 FLOPs per multiply-add of every matmul in the four DCA blocks and (Table 5) their timestep embedding. The
    release's audio stream is its 116 tokens plus Stable Audio's global token; its adaLN reads the towers' own
    time embeddings (no embedding of its own); rotary positions are elementwise (not counted)."""
    nv, na, d, c = 32_760, 117, 1536, 1536
    per_block = (
        2 * 2 * c * 6 * d  # adaLN modulation, both streams
        + 2 * (nv * d * d) * 2
        + 2 * (na * d * d) * 2  # A-to-V: q and out over video; k, v over audio
        + 2 * (na * d * d) * 2
        + 2 * (nv * d * d) * 2  # V-to-A: q and out over audio; k, v over video
        + 2 * 2 * (nv * na * d) * 2  # Q K^T and A V, both directions
        + 2 * 2 * (nv + na) * d * 4 * d  # the MLPs
    )
    if architecture == "release":
        assert real_dca.flops["bridges"] == 4 * per_block
    else:
        timestep_embedding = 2 * 2 * (256 * c + c * c)
        assert table5_dca.flops["bridges"] == 4 * per_block + timestep_embedding


def test_dca_meets_the_flops_goal(real_dca):
    assert real_dca.bridge_flop_share <= 0.03
    assert real_dca.flops["total"] == pytest.approx(
        real_dca.flops["video_tower"] + real_dca.flops["audio_tower"] + real_dca.flops["bridges"], rel=1e-9
    )


@pytest.mark.parametrize("fusion", ["none", "full_attention", "additive", "v2a", "a2v"])
def test_every_fusion_is_described(fusion):
    description = describe(get_preset("tiny"), fusion=fusion)
    assert description.fusion == fusion
    assert (description.flops["bridges"] == 0) == (fusion == "none")
    assert (description.parameters["bridges"] == 0) == (fusion == "none")


def test_cli_json(capsys):
    assert main(["describe", "--preset", "tiny", "--fusion", "additive", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fusion"] == "additive" and data["preset"] == "tiny"
    assert set(data["parameters"]) == {"video_tower", "audio_tower", "bridges", "trainable"}
    assert 0 < data["bridge_flop_share"]


def test_cli_table(capsys):
    assert main(["describe", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "parameters" in out and "FLOPs of one joint forward" in out and "% of the towers" in out


def test_cli_rejects_unknown_fusion(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["describe", "--fusion", "cross"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'cross'" in capsys.readouterr().err


def test_unknown_preset_is_named():
    with pytest.raises(ConfigError, match=re.escape("unknown preset 'wan'; known presets: " + ", ".join(PRESETS))):
        get_preset("wan")
