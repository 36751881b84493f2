# The two commands: `make run` and `make test`. Both set up everything first.
# `make test-unit` runs the fast tier of `make test`, for while you work.
.PHONY: setup run test test-unit lint bench-sandbox images clean

setup:
	@scripts/setup.sh

run: setup
	@scripts/run.sh

test:
	@WITH_BROWSER=1 scripts/setup.sh
	@scripts/lint.sh
	@scripts/test.sh $(ARGS)

# the unit tier, under a minute: the tests not marked `system` (they need no Docker engine, images
# or browser); `make test` runs them too
test-unit:
	@WITHOUT_DOCKER=1 scripts/setup.sh
	@scripts/test-unit.sh $(ARGS)

# ruff: lint and formatting (the configuration is in pyproject.toml); make test runs it first
lint:
	@ONLY_PYTHON=1 scripts/setup.sh
	@scripts/lint.sh

images:
	@.venv/bin/python manage.py sandbox_build

bench-sandbox: setup
	@.venv/bin/python bench/sandbox.py

clean:
	rm -rf .venv var
