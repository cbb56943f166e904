# shopgraph — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Parallel test workers (pytest-xdist); each starts its own throwaway PostgreSQL.
TEST_WORKERS ?= auto
DEMO_DB ?= sqlite+aiosqlite:///./shopgraph.db
export SHOPGRAPH_DATABASE_URL ?= $(DEMO_DB)

.PHONY: install demo serve test lint schema bench clean vendor-graphiql

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

# The graphql-http audit suite (npm) that tests/security/test_graphql_http.py runs with node.
GRAPHQL_HTTP_AUDIT := build/graphql-http/node_modules/graphql-http/package.json
$(GRAPHQL_HTTP_AUDIT):
	mkdir -p build/graphql-http
	npm install --silent --no-save --no-package-lock --no-audit --no-fund \
		--prefix build/graphql-http graphql-http@1 graphql@16

# Set everything up and run the whole suite (SQLite, and PostgreSQL where its binaries exist).
test: install $(GRAPHQL_HTTP_AUDIT)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -p no:cacheprovider -n $(TEST_WORKERS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

schema: install
	$(BIN)/shopgraph schema export > schema/schema.graphql

# The storefront benchmark (docs/benchmarks.md), driven by wrk, the compiled load generator
# (Debian package wrk, installed here when missing and run as root). Options go in BENCH_ARGS,
# e.g. make bench BENCH_ARGS='--databases sqlite --duration 5 --rounds 1'.
BENCH_ARGS ?=
bench: install
	@command -v wrk >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; \
		else \
			echo "make bench needs wrk, the compiled HTTP load generator:" \
				"install the Debian package wrk (sudo apt-get install wrk)" >&2; \
			exit 1; \
		fi; }
	$(BIN)/python -m bench.storefront $(BENCH_ARGS)

# Fetch the pinned GraphiQL assets again from npm (checked against server/static/graphiql/MANIFEST).
vendor-graphiql:
	scripts/vendor-graphiql.sh

clean:
	rm -rf $(VENV) shopgraph.db shopgraph.db-wal shopgraph.db-shm
