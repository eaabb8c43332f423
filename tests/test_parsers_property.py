"""Property-based tests (Hypothesis) over the parsers of users' files: any prompt file, any training config yields a
parsed value or a one-line ConfigError naming the problem, never another exception."""

import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridgedit.config import ConfigError
from bridgedit.generation import read_prompt_file
from bridgedit.training.config import TrainConfig

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

#: JSON values of every kind, nested a little
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
PROMPT_KEYS = ["id", "video_prompt", "audio_prompt", "prompt", "seed", "video", "audio", "negative_video_prompt"]
#: prompt lines: objects over the real keys (and others), with values of any kind; or any JSON at all
PROMPT_LINES = (
    st.dictionaries(st.sampled_from(PROMPT_KEYS) | st.text(max_size=6), JSON_VALUES, max_size=6) | JSON_VALUES
)


def _one_line(error: Exception) -> None:
    assert str(error) and "\n" not in str(error)


@SETTINGS
@given(lines=st.lists(PROMPT_LINES, max_size=4), raw=st.binary(max_size=40))
def test_any_prompt_file_parses_or_is_named_in_one_line(tmp_path, lines, raw):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(b"\n".join(json.dumps(line).encode() for line in lines) + b"\n" + raw)
    try:
        items = read_prompt_file(path)
    except ConfigError as error:
        _one_line(error)
    else:
        assert items and len({item.id for item in items}) == len(items)


SECTIONS = {
    "model": ["base", "video", "audio", "bridge", "trainable"],
    "data": ["dataset", "cache", "split", "captions", "max_sequence_length", "allow_missing_captions"],
    "optim": ["lr", "weight_decay", "betas", "warmup_steps", "min_lr", "max_grad_norm", "schedule"],
    "train": ["steps", "batch_size", "grad_accum", "mixed_precision", "seed", "timesteps", "caption_dropout"],
    "checkpoint": ["dir", "every"],
    "log": ["every", "tensorboard"],
}
SECTION_VALUES = st.one_of(
    *(
        st.dictionaries(st.sampled_from(keys) | st.text(max_size=5), JSON_VALUES, max_size=4).map(
            lambda values, name=name: (name, values)
        )
        for name, keys in SECTIONS.items()
    )
)


@SETTINGS
@given(sections=st.lists(SECTION_VALUES, max_size=4), extra=JSON_VALUES)
def test_any_training_config_parses_or_is_named_in_one_line(tmp_path, sections, extra):
    data = {"model": {"base": "tiny"}, "data": {"dataset": "data/mine"}, **dict(sections)}
    if isinstance(extra, dict):
        data.update({f"x{key}": value for key, value in list(extra.items())[:1]})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        TrainConfig.from_yaml(path)
    except ConfigError as error:
        _one_line(error)


@pytest.mark.parametrize("text", ["", "[1, 2", "- a\n- b\n", "model: [", "null\n", "\t"])
def test_config_files_that_are_not_a_mapping_are_named(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        TrainConfig.from_yaml(path)
