# The suite's command-line surface. Every target creates .venv and installs on first use.
# make train METHOD=clip|afr|fb|vtfusion|linear [PROFILE=quick|paper] [DATA=builtin|mvtec|visa|folder]
#            [DATA_ROOT=] [AUX=] [AUX_ROOT=] [DEVICES=N] [NODES=N] [K=] [SEED=] [SEEDS=0,1,2] [RESUME=runs/<name>] [ARGS="..."]
# make ablate METHOD= TABLE= [JOBS=N] [GPUS=0,1,..] [LAUNCHER=local|slurm|submitit-local] [PARTITION=]
#            [GPUS_PER_JOB=1] [CPUS_PER_JOB=] [TIME=240] [ARRAY_PARALLELISM=32] [RUNS_ROOT=runs]
# make table | make dashboard [METHOD=] [TABLE=] [RUNS_ROOT=runs]

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)

PROFILE ?= quick
TRAIN_OPTS = $(if $(METHOD),--method "$(METHOD)") $(if $(RESUME),,--profile "$(PROFILE)") \
	$(if $(DATA),--data "$(DATA)") $(if $(DATA_ROOT),--data-root "$(DATA_ROOT)") \
	$(if $(AUX),--aux "$(AUX)") $(if $(AUX_ROOT),--aux-root "$(AUX_ROOT)") \
	$(if $(DEVICES),--devices "$(DEVICES)") $(if $(NODES),--nodes "$(NODES)") $(if $(K),--k "$(K)") $(if $(SEED),--seed "$(SEED)") \
	$(if $(SEEDS),--seeds "$(SEEDS)") $(if $(RESUME),--resume "$(RESUME)")

TABLE_OPTS = $(if $(RUNS_ROOT),--runs-root "$(RUNS_ROOT)")
SCALE_OPTS = $(if $(JOBS),--jobs "$(JOBS)") $(if $(GPUS),--gpus "$(GPUS)") $(if $(LAUNCHER),--launcher "$(LAUNCHER)") \
	$(if $(PARTITION),--partition "$(PARTITION)") $(if $(GPUS_PER_JOB),--gpus-per-job "$(GPUS_PER_JOB)") \
	$(if $(CPUS_PER_JOB),--cpus-per-job "$(CPUS_PER_JOB)") $(if $(TIME),--time "$(TIME)") \
	$(if $(ARRAY_PARALLELISM),--array-parallelism "$(ARRAY_PARALLELISM)")

.PHONY: install train test test-fast lint ablate table dashboard compare bench bench-train bench-metrics mutate slips rehearse clean-venv

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

test-fast: $(STAMP)
	$(PY) -m ruff check src datamodules tests
	WANDB_MODE=offline WANDB_SILENT=true $(PY) -m pytest -q -m "not slow and not ddp"

lint: $(STAMP)
	$(PY) -m ruff check src datamodules tests

ablate: $(STAMP)
	@test -n "$(METHOD)" -a -n "$(TABLE)" || { echo "usage: make ablate METHOD=<m> TABLE=<name> [PROFILE=] [SEEDS=] [DATA= DATA_ROOT= AUX= AUX_ROOT=] [ROWS=a,b] [JOBS=N GPUS=0,1] [LAUNCHER=slurm PARTITION=]"; exit 2; }
	$(PY) -m src.tables $(TABLE_OPTS) ablate --method "$(METHOD)" --table "$(TABLE)" --profile "$(PROFILE)" $(SCALE_OPTS) \
		$(if $(SEEDS),--seeds "$(SEEDS)") $(if $(DATA),--data "$(DATA)") $(if $(DATA_ROOT),--data-root "$(DATA_ROOT)") \
		$(if $(AUX),--aux "$(AUX)") $(if $(AUX_ROOT),--aux-root "$(AUX_ROOT)") $(if $(ROWS),--rows "$(ROWS)") -- $(ARGS)

table: $(STAMP)
	$(PY) -m src.tables $(TABLE_OPTS) table $(if $(METHOD),--method "$(METHOD)") $(if $(TABLE),--table "$(TABLE)")

dashboard: $(STAMP)
	$(PY) -m src.tables $(TABLE_OPTS) dashboard $(if $(METHOD),--method "$(METHOD)") $(if $(TABLE),--table "$(TABLE)")

compare: $(STAMP)
	$(PY) -m src.tables compare --profile "$(PROFILE)" $(if $(PROTOCOL),--protocol "$(PROTOCOL)") \
		$(if $(K),--k "$(K)") $(if $(DATA),--data "$(DATA)") $(if $(DATA_ROOT),--data-root "$(DATA_ROOT)") \
		$(if $(AUX),--aux "$(AUX)") $(if $(AUX_ROOT),--aux-root "$(AUX_ROOT)") $(if $(METHODS),--methods "$(METHODS)") \
		-- $(ARGS)

# Every paper command of docs/reproduce.md on stand-in data, width-64 backbones, a few steps (CPU).
rehearse: $(STAMP)
	$(PY) -m src.rehearse $(if $(ONLY),--only "$(ONLY)") $(if $(CHECK),--check-only)

bench: $(STAMP)
	$(PY) -m src.bench $(BENCH_ARGS)

bench-train: $(STAMP)
	$(PY) -m src.bench --train-only $(BENCH_ARGS)

bench-metrics: $(STAMP)
	$(PY) -m src.metrics.bench $(BENCH_ARGS)

mutate: $(STAMP)
	$(PY) -m tests.mutation $(if $(PKG),--packages "$(PKG)") $(MUTATE_ARGS)

# The catalogue of plausible single-line slips (tests/mutation/slips.py): caught / missed per slip.
slips: $(STAMP)
	$(PY) -m tests.mutation.slips $(if $(ONLY),--only "$(ONLY)") $(SLIPS_ARGS)

clean-venv:
	rm -rf $(VENV)
