# The README's two commands:  `make run` (the app on the embedded model) and `make test`.
# Both create ./.venv on first use. GPU users: install into your own environment instead
# (pip install --no-deps open_clip_torch && pip install -e .), keeping your CUDA torch.
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
	@# open_clip_torch only for the CLIP vocabulary file it ships; its own requirements
	@# (torchvision, timm) would pull CUDA wheels and break a CPU torch, hence --no-deps.
	$(BIN)/python -m pip install -q --no-deps "open_clip_torch==3.3.0"
	@echo "note: pip may now print a dependency-resolver ERROR that open_clip_torch needs torchvision/timm:" \
	      "harmless, they are left out on purpose (only its CLIP vocabulary file is used)."
	$(BIN)/python -m pip install -q -e ".[test]" "$(TORCH)"
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	$(BIN)/sd-explorer $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
