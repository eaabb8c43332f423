"""The README's commands exist as written: every `bridgedit` command parses (its subcommand and flags are real), every
script and config it names is there, every make target is in the Makefile. Those that run offline in seconds are run
elsewhere: the release section's stand-in block (tests/test_official.py), `make demo`'s command
(tests/test_generate_cli.py)."""

import shlex
from pathlib import Path

import pytest

from bridgedit.cli.main import build_parser

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def _commands() -> list[str]:
    """Every command line of the README's bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in README.split("```bash\n")[1:]:
        text = block.split("```", 1)[0].replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


COMMANDS = _commands()


def test_the_readme_is_short_and_has_its_commands():
    assert len(README.splitlines()) < 200
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_names_what_exists(command):
    argv = shlex.split(command)
    program = argv[0]
    if program == "make":
        assert f"\n{argv[1]}:" in (ROOT / "Makefile").read_text()
        return
    if program == "printf":
        return
    if program.endswith("/bridgedit"):
        arguments = argv[1:]
    elif program.endswith("/accelerate"):
        arguments = argv[argv.index("bridgedit.cli.main") + 1 :]
        config = argv[argv.index("--config_file") + 1] if "--config_file" in argv else None
        assert config is None or (ROOT / config).is_file(), config
    elif program.endswith("/python") and argv[1:3] == ["-m", "bridgedit.tiny"]:
        from bridgedit.tiny import _main  # noqa: F401  (the module's command line exists)

        return
    else:
        raise AssertionError(f"a README command this test does not know how to check: {command}")
    build_parser().parse_args(arguments)  # exits (fails the test) on an unknown subcommand or flag
    for value in arguments:
        if value.startswith("configs/"):
            assert (ROOT / value).is_file(), value


def test_readme_links_and_images_exist():
    import re

    for target in re.findall(r"\]\(((?:docs|configs|benchmarks)/[^)#]+|[A-Z]+\.md)", README):
        assert (ROOT / target).exists(), target
    for script in re.findall(r"python (benchmarks/\w+\.py)", README):
        assert (ROOT / script).is_file(), script
