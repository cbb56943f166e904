# shopgraph — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Parallel test workers (pytest-xdist); each starts its own throwaway PostgreSQL.
TEST_WORKERS ?= auto
DEMO_DB ?= sqlite+aiosqlite:///./shopgraph.db
export SHOPGRAPH_DATABASE_URL ?= $(DEMO_DB)

.PHONY: install demo serve test test-lowest lock lint schema bench bench-search bench-clv \
	bench-insights bench-kpis bench-recommendation bench-recommendation-serving bench-pricing bench-promotions bench-logistics clean \
	vendor-graphiql vendor-admin

# constraints.txt pins every package of the tested environment (`make lock` rewrites it), so
# that `make test` installs the same versions on every machine.
$(BIN)/shopgraph: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(BIN)/shopgraph

install: $(BIN)/shopgraph

# Set everything up and serve the demo shop: http://127.0.0.1:8000/graphql (GraphiQL) and
# http://127.0.0.1:8000/admin (the dashboard).
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
	$(BIN)/mypy
	$(BIN)/python -m pytest -p no:cacheprovider -n $(TEST_WORKERS)

# uv resolves the lock and the lowest versions; it lives in a virtualenv of its own, so that
# `make lock` works even when pyproject.toml no longer agrees with constraints.txt.
UV_VERSION := 0.13.9
UV := build/uv/bin/uv
$(UV):
	$(PYTHON) -m venv build/uv
	build/uv/bin/pip install --quiet 'uv==$(UV_VERSION)'

# Pin the newest versions pyproject.toml allows, for every platform, on Python 3.11 and later.
lock: $(UV)
	$(UV) pip compile --quiet --universal --python-version 3.11 --extra test \
		--custom-compile-command 'make lock' -o constraints.txt pyproject.toml

# The lower bounds of pyproject.toml, tested: a virtualenv with the lowest allowed version of
# every direct dependency, then lint and a fast subset of the suite that imports every module
# and runs API tests on SQLite and PostgreSQL. pytest's exit status fails the target whenever
# it is not 0, "no tests collected" (5) included.
LOWEST_VENV := build/lowest-venv
LOWEST_TESTS := tests/packaging tests/server/test_smoke.py tests/server/test_migrations.py \
	tests/server/test_json_codec.py tests/server/test_demo_data.py tests/server/test_clv.py \
	tests/schema/test_accounts.py \
	tests/schema/test_orders.py tests/security/test_limits.py tests/security/test_fuzz.py \
	tests/plugins/test_loyalty.py tests/server/test_operations.py tests/e2e/test_graphiql.py \
	tests/server/test_experiment_stats.py tests/server/test_forecasts.py \
	tests/plugins/recommendation/test_components.py
test-lowest: $(UV)
	rm -rf $(LOWEST_VENV)
	$(UV) venv --quiet --python $(PYTHON) $(LOWEST_VENV)
	$(UV) pip install --quiet --python $(LOWEST_VENV)/bin/python --resolution lowest-direct \
		-e '.[test]'
	# The suite pip-installs the example plugin without build isolation. Installed last, so
	# that no package they pull in stands in for a lower version of a dependency.
	$(UV) pip install --quiet --python $(LOWEST_VENV)/bin/python pip setuptools
	$(LOWEST_VENV)/bin/ruff check .
	$(LOWEST_VENV)/bin/ruff format --check .
	$(LOWEST_VENV)/bin/python -m pytest -p no:cacheprovider -n $(TEST_WORKERS) $(LOWEST_TESTS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

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

# The search benchmark (docs/benchmarks.md, "Search"): 100,000 generated products, exact and
# forgiving queries, the exact ones against the plain full-text SQL (a hand-written endpoint),
# on SQLite and PostgreSQL. Options in BENCH_ARGS, e.g. '--products 20000'.
bench-search: install
	@command -v wrk >/dev/null 2>&1 || { \
		echo "make bench-search needs wrk: install the Debian package wrk" >&2; exit 1; }
	$(BIN)/python -m bench.search $(BENCH_ARGS)

# The CLV benchmark (docs/insights.md, "Speed"): `insights fit-clv`'s steps on a generated log
# of about a million transactions. Options in BENCH_ARGS, e.g. '--customers 50000'.
bench-clv: install
	$(BIN)/python -m bench.clv $(BENCH_ARGS)

# The customer-insights benchmark (docs/benchmarks.md, "Customer insights"): the rfm and clv
# steps of `insights rebuild` on 50,000 simulated customers and 1,000,000 orders, on SQLite and
# PostgreSQL. Options in BENCH_ARGS, e.g. '--databases sqlite --orders 200000'.
bench-insights: install
	$(BIN)/python -m bench.insights $(BENCH_ARGS)

# The KPI benchmark (docs/benchmarks.md, "KPIs"): 1,000,000 orders, the aggregates rebuilt
# and refreshed after 1,000 new orders (timed), then shopKpis for a year by day against a
# hand-written endpoint reading the same rows, driven by wrk. Options in BENCH_ARGS, e.g.
# '--databases sqlite --orders 200000'.
bench-kpis: install
	@command -v wrk >/dev/null 2>&1 || { \
		echo "make bench-kpis needs wrk: install the Debian package wrk" >&2; exit 1; }
	$(BIN)/python -m bench.kpis $(BENCH_ARGS)

# The recommendation benchmark (docs/benchmarks.md, "Recommendation"): a generated shop of
# 100,000 products, 50,000 customers, 500,000 orders and 2,000,000 behaviour events, and one
# full rebuild of the models (seconds per phase, peak memory), on SQLite and PostgreSQL.
# Options in BENCH_ARGS, e.g. '--databases sqlite --products 20000'; '--write' updates the docs.
bench-recommendation: install
	$(BIN)/python -m bench.recommendation $(BENCH_ARGS)

# The recommendation serving benchmark (docs/benchmarks.md, "Recommendation serving"): the
# same shop after a full rebuild, `recommendations(first: 10)` beside `product(id:)` driven by
# wrk against one server. Options in BENCH_ARGS, e.g. '--databases sqlite --duration 5'.
bench-recommendation-serving: install
	@command -v wrk >/dev/null || { \
		echo "make bench-recommendation-serving needs wrk: install the Debian package wrk" >&2; \
		exit 1; }
	$(BIN)/python -m bench.recommendation_serving $(BENCH_ARGS)

# The pricing benchmark (docs/benchmarks.md, "Pricing"): the storefront page, cold, with the
# pricing plugin enabled and rules in place against the plugin disabled, driven by wrk.
bench-pricing: install
	@command -v wrk >/dev/null || { \
		echo "make bench-pricing needs wrk: install the Debian package wrk" >&2; \
		exit 1; }
	$(BIN)/python -m bench.pricing $(BENCH_ARGS)

# The promotions benchmark (docs/benchmarks.md, "Promotions"): a 20-line cart's totals with 50
# running promotions (p50/p99), and the storefront page with promotions on against off.
bench-promotions: install
	@command -v wrk >/dev/null 2>&1 || { \
		echo "make bench-promotions needs wrk: install the Debian package wrk" >&2; \
		exit 1; }
	$(BIN)/python -m bench.promotions $(BENCH_ARGS)

# The logistics quotes benchmark (docs/benchmarks.md, "Logistics: shipping quotes"): a 20-line
# cart's shipping quotes with 10 warehouses and 5 carriers (p50/p99), against the plugin off.
bench-logistics: install
	@command -v wrk >/dev/null 2>&1 || { \
		echo "make bench-logistics needs wrk: install the Debian package wrk" >&2; \
		exit 1; }
	$(BIN)/python -m bench.logistics_quotes $(BENCH_ARGS)

# The logistics webhook benchmark (docs/benchmarks.md, "Logistics: webhook ingestion"): signed
# batches of carriers' tracking events ingested per second, against a trivial signed plugin
# route in the same run, driven by wrk. Options in BENCH_ARGS, e.g. '--databases sqlite'.
.PHONY: bench-logistics-webhook
bench-logistics-webhook: install
	@command -v wrk >/dev/null 2>&1 || { \
		echo "make bench-logistics-webhook needs wrk: install the Debian package wrk" >&2; \
		exit 1; }
	$(BIN)/python -m bench.logistics_webhook $(BENCH_ARGS)

# Fetch the pinned GraphiQL assets again from npm (checked against server/static/graphiql/MANIFEST).
vendor-graphiql:
	scripts/vendor-npm-assets.sh server/static/graphiql

# Fetch the dashboard's pinned chart library again from npm (checked against
# server/static/admin/MANIFEST).
vendor-admin:
	scripts/vendor-npm-assets.sh server/static/admin

clean:
	rm -rf $(VENV) build/uv $(LOWEST_VENV) .mypy_cache shopgraph.db shopgraph.db-wal shopgraph.db-shm
