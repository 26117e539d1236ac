# The README's two commands:  `make run` (the app on the embedded model) and `make test`.
# Both create ./.venv on first use. GPU users: install into your own environment instead
# (pip install -e . && pip install --no-deps open_clip_torch), keeping your CUDA torch.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
# torch comes from PyPI: on Linux x86-64 that wheel bundles the CUDA libraries (GBs) and simply runs on
# the CPU when there is no GPU. For the smaller CPU-only wheel: make run TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
ARGS   ?=

.PHONY: install run test bench clean
install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]" "$(TORCH)"
	@# CLIP's vocabulary file (bpe_simple_vocab_16e6.txt.gz) comes from open_clip_torch's wheel, which is only
	@# downloaded, never installed: its requirements (torchvision, timm) would pull CUDA wheels onto a CPU torch,
	@# and installed without them pip would report them missing. The file goes to $(VENV)/share/sd-explorer/.
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: "open_clip_torch==3.3.0" -d $(VENV)/wheels
	$(BIN)/python -m sd_explorer.core.clip_vocab --from-wheel "$$(ls $(VENV)/wheels/open_clip_torch-3.3.0-*.whl | head -1)"
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	$(BIN)/sd-explorer $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
