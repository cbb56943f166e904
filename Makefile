# shopgraph — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DB ?= sqlite+aiosqlite:///./shopgraph.db
export SHOPGRAPH_DATABASE_URL ?= $(DEMO_DB)

.PHONY: install demo serve test lint schema bench clean

$(BIN)/shopgraph: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/shopgraph

install: $(BIN)/shopgraph

# Set everything up and serve the demo shop: http://127.0.0.1:8000/graphql
demo: install
	$(BIN)/shopgraph db upgrade
	$(BIN)/shopgraph demo-data --if-empty
	$(BIN)/shopgraph serve --host 127.0.0.1 --port 8000

serve: install
	$(BIN)/shopgraph serve

# Set everything up and run the whole suite (SQLite, and PostgreSQL where its binaries exist).
test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -p no:cacheprovider

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

schema: install
	$(BIN)/shopgraph schema export > schema/schema.graphql

bench: install
	$(BIN)/python bench/storefront.py

clean:
	rm -rf $(VENV) shopgraph.db shopgraph.db-wal shopgraph.db-shm
