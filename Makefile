# The two commands of the quick start are `make run` and `make test`.
.PHONY: run test faults bench provision lint clean

run:
	@bash scripts/run.sh

test:
	@bash scripts/test.sh

faults:
	@bash scripts/faults.sh

bench:
	@bash scripts/bench.sh

provision:
	@bash scripts/provision.sh

lint:
	@.venv/bin/ruff check . && .venv/bin/ruff format --check . && SECRET_KEY=lint-only DEBUG=true .venv/bin/mypy .

clean:
	rm -rf .venv .run staticfiles
