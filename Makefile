# logisync developer commands. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: install help demo test soak lint bench bench-live fmt clean kafka-start kafka-stop

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install logisync with its pinned dependencies

demo: $(STAMP)  ## set up and run the pipeline on the simulator into the embedded store
	$(BIN)/logisync run
	@echo
	@echo "Dashboards: run  $(BIN)/logisync serve  and open http://127.0.0.1:8080/ (Ctrl-C stops it)"

test: $(STAMP)  ## set up and run the whole test suite (starts a local Kafka broker)
	$(BIN)/pytest -q

soak: $(STAMP)  ## crash loop: 60 SIGKILLs of a real Kafka run, then the clean run's tables (~3 min)
	LOGISYNC_SOAK=1 $(BIN)/pytest -q -s -m soak tests/flows/test_crash_loop.py

lint: $(STAMP)  ## ruff, ruff format --check, mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)  ## format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)  ## pipeline vs read+normalize ceiling on a generated 200k-message replay
	$(BIN)/python benchmarks/bench_pipeline.py

bench-live: $(STAMP)  ## live latency: Kafka timestamp -> stored row, deadline -> alert (RATE=1000 MESSAGES=20000)
	$(BIN)/python benchmarks/bench_live.py --rate $(or $(RATE),1000) --messages $(or $(MESSAGES),20000)

kafka-start: $(STAMP)  ## start a local Apache Kafka broker (prints its bootstrap address)
	scripts/kafka-local start

kafka-stop:  ## stop the local Kafka broker
	scripts/kafka-local stop

clean:  ## remove the virtualenv and local data
	rm -rf $(VENV) var .kafka .pytest_cache .mypy_cache .ruff_cache
