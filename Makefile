# Two commands set everything up on a fresh machine:
#   make demo   creates .venv (if needed) and runs the main job
#   make test   creates .venv (if needed) and runs the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-fast clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: on this CPU machine 2.13.0 is a local wheel; anything else pulls a CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,app]'
	touch $(STAMP)

venv: $(STAMP)

# The main job: a sounding video from the bundled demo model, on a CPU, in seconds.
demo: $(STAMP)
	$(BIN)/bridgedit generate --video-prompt "A red rubber ball bounces up and down on a beige floor." \
		--audio-prompt "A dull, soft thud, repeated each time a rubber object hits the floor." --out demo.mp4 --seed 0

test: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# the quick core (under a minute): everything but the tests marked slow
test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache demo.mp4
