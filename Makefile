# The suite's command-line surface. Every target creates .venv and installs on first use.
# make train METHOD=clip|afr|fb|vtfusion|linear [PROFILE=quick|paper] [DATA=builtin|mvtec|visa|folder]
#            [DATA_ROOT=] [AUX=] [AUX_ROOT=] [DEVICES=N] [K=] [SEED=] [SEEDS=0,1,2] [RESUME=runs/<name>] [ARGS="..."]

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)

PROFILE ?= quick
TRAIN_OPTS = $(if $(METHOD),--method "$(METHOD)") $(if $(RESUME),,--profile "$(PROFILE)") \
	$(if $(DATA),--data "$(DATA)") $(if $(DATA_ROOT),--data-root "$(DATA_ROOT)") \
	$(if $(AUX),--aux "$(AUX)") $(if $(AUX_ROOT),--aux-root "$(AUX_ROOT)") \
	$(if $(DEVICES),--devices "$(DEVICES)") $(if $(K),--k "$(K)") $(if $(SEED),--seed "$(SEED)") \
	$(if $(SEEDS),--seeds "$(SEEDS)") $(if $(RESUME),--resume "$(RESUME)")

.PHONY: install train test lint ablate table compare bench bench-metrics clean-venv

$(STAMP): requirements.txt
	@echo "Creating $(VENV) and installing requirements (first use only)..."
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	@test -n "$(METHOD)$(RESUME)" || { echo "usage: make train METHOD=clip|afr|fb|vtfusion|linear [PROFILE=quick|paper] [DATA=...] [ARGS=\"...\"]"; exit 2; }
	$(PY) -m src.run $(TRAIN_OPTS) -- $(ARGS)

test: $(STAMP)
	$(PY) -m ruff check src datamodules tests
	WANDB_MODE=offline WANDB_SILENT=true $(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check src datamodules tests

ablate: $(STAMP)
	@test -n "$(METHOD)" -a -n "$(TABLE)" || { echo "usage: make ablate METHOD=<m> TABLE=<name> [PROFILE=] [SEEDS=]"; exit 2; }
	$(PY) -m src.tables ablate --method "$(METHOD)" --table "$(TABLE)" --profile "$(PROFILE)" \
		$(if $(SEEDS),--seeds "$(SEEDS)") $(if $(DATA),--data "$(DATA)") $(if $(DATA_ROOT),--data-root "$(DATA_ROOT)") -- $(ARGS)

table: $(STAMP)
	$(PY) -m src.tables table $(if $(METHOD),--method "$(METHOD)") $(if $(TABLE),--table "$(TABLE)")

compare: $(STAMP)
	$(PY) -m src.tables compare --profile "$(PROFILE)" $(if $(PROTOCOL),--protocol "$(PROTOCOL)") \
		$(if $(K),--k "$(K)") $(if $(DATA),--data "$(DATA)") $(if $(DATA_ROOT),--data-root "$(DATA_ROOT)") -- $(ARGS)

bench: $(STAMP)
	$(PY) -m src.bench $(BENCH_ARGS)

bench-metrics: $(STAMP)
	$(PY) -m src.metrics.bench $(BENCH_ARGS)

clean-venv:
	rm -rf $(VENV)
