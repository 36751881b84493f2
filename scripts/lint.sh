#!/usr/bin/env bash
# ruff (lint rules, then formatting: nothing is rewritten here) and the import rule (import-linter's
# contracts), both configured in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports --no-cache --no-logo
