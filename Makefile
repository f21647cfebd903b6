# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed
DEMO_FRAMES ?= 30
DEMO_EPOCHS ?= 150

.PHONY: install demo test browser clean

# torch is pinned and installed first, so pip never resolves an unpinned (multi-GB CUDA) torch.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test,eval]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	mkdir -p demo
	$(PY) tools/make_clip.py --frames $(DEMO_FRAMES) demo/carphone.y4m
	$(VENV)/bin/hinerv encode demo/carphone.y4m demo/carphone.bin --preset m --epochs $(DEMO_EPOCHS) --quant entropy \
		--json demo/report.json
	$(VENV)/bin/hinerv decode demo/carphone.bin demo/carphone_decoded.y4m
	$(VENV)/bin/hinerv info demo/carphone.bin

# Debian's headless Chromium for the report's browser test (installed with apt-get when missing, as root)
browser:
	bash tools/install_browser.sh

test: $(STAMP) browser
	$(PY) -m pytest -q

clean:
	rm -rf demo .pytest_cache
