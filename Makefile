# memctl: two entry points do all set-up on a fresh machine.
#   make demo   install memctl, then search -> retrain --best --evaluate -> baselines (freeze,
#               full) -> report on the embedded default
#   make test   install memctl with test extras, start SLURM + PostgreSQL, run the whole suite

VENV   ?= .venv
PY     := $(VENV)/bin/python
MEMCTL := $(VENV)/bin/memctl
# DeepSpeed JIT-compiles its CPU ops once (~90 s); every test reuses this folder.
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.torch_extensions

.PHONY: install demo infra infra-down test test-latest lock-test lint bench clean
LOCK := constraints/test.txt

install: $(VENV)/.installed

# torch first, pinned: the CPU wheel lies on disk here; an open range pulls a multi-GB CUDA build.
# Everything else from the tested lock, so a new upstream release cannot turn the suite red.
$(VENV)/.installed: pyproject.toml $(LOCK)
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c $(LOCK) -e '.[test]'
	touch $@

demo: install
	$(MEMCTL) search --trials 8 --workers 2
	$(MEMCTL) retrain --best --evaluate
	$(MEMCTL) baselines --methods freeze,full --mitigations none
	$(MEMCTL) report

infra:
	slurm/dev/install.sh
	slurm/dev/up.sh

infra-down:
	slurm/dev/down.sh

test: install infra
	$(VENV)/bin/ruff check memctl tests benchmarks
	$(PY) -m memctl.train.prebuild
	. $${MEMCTL_DEV_STATE:-.dev-cluster}/env && MEMCTL_REQUIRE_INFRA=1 $(PY) -m pytest -q $(PYTEST_ARGS)

# Non-blocking: the suite on the newest releases pyproject.toml allows (own venv, no lock).
test-latest:
	$(MAKE) VENV=.venv-latest LOCK=/dev/null test || echo "test-latest: failures above (not a CI gate)"

lock-test: install
	$(PY) -m pip freeze --exclude-editable | grep -v -E '^(memctl|pip|setuptools)==' \
	  | sed 's/^torch==\([0-9.]*\)+cpu/torch==\1/' > $(LOCK).new
	{ sed -n '1,3p' $(LOCK); cat $(LOCK).new; } > $(LOCK).tmp && mv $(LOCK).tmp $(LOCK) && rm $(LOCK).new

lint: install
	$(VENV)/bin/ruff check memctl tests benchmarks

bench: install
	$(PY) benchmarks/peft_step.py
	$(PY) benchmarks/data_path.py
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/metrics.py
	$(PY) benchmarks/storage.py

clean:
	rm -rf memctl-runs .pytest_cache .ruff_cache
