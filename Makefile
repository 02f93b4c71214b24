# Two entry points that work on a fresh machine:
#   make demo   runs the whole pipeline on the bundled demo images
#   make test   runs ruff and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL ?=
CATEGORIES ?=
MAPPING ?=
DEMO_OUT ?= demo-output

.PHONY: test test-gpu demo lint bench docs docs-ref clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# SpeciesNet's own classifier, the test oracle; without its dependencies (yolov5 and the detector stack)
	$(BIN)/python -m pip install --quiet --no-deps 'speciesnet==5.0.6'
	# SpeciesNet 5.0.5, the oracle of the per-image (legacy) ensemble, beside it (tests/speciesnet_oracle.py)
	$(BIN)/python -m pip install --quiet --no-deps --target $(VENV)/speciesnet-5.0.5 'speciesnet==5.0.5'
	touch $(STAMP)

# the same checks as .pre-commit-config.yaml
lint: $(STAMP)
	$(BIN)/ruff check megaclassifier tests benchmarks demo
	$(BIN)/ruff format --check megaclassifier tests benchmarks demo
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# on a machine with a CUDA GPU: the GPU tests must run, not skip
test-gpu: $(STAMP)
	MEGACLASSIFIER_REQUIRE_GPU=1 $(BIN)/python -m pytest tests/test_gpu.py tests/test_engines.py tests/test_run.py tests/test_run_fast.py tests/test_speciesnet.py $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/python demo/run_demo.py --output-dir $(DEMO_OUT) $(if $(MODEL),--model $(MODEL)) $(if $(CATEGORIES),--categories $(CATEGORIES)) $(if $(MAPPING),--mapping $(MAPPING))

# the documentation site, into site/ (open site/index.html); warnings are errors
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

# regenerate docs/commands.md from the commands' --help (a test fails when it is stale)
docs-ref: $(STAMP)
	$(BIN)/python -m megaclassifier.cli._docs docs/commands.md

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_crop.py --reference
	$(BIN)/python benchmarks/bench_classify.py
	$(BIN)/python benchmarks/bench_run.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .ruff_cache build site *.egg-info
