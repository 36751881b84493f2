#!/usr/bin/env bash
# ruff, configured in pyproject.toml: lint rules, then formatting (nothing is rewritten here).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
