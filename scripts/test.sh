#!/usr/bin/env bash
# The test suite. Sets itself up on first run (./.venv). Extra arguments go to pytest.
# Default: the fast suite (a few minutes); `--all` adds the slow integration tests (notebooks,
# Spark, an MLflow server, a browser, end-to-end runs on several logs), as CI runs it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
args=()
for a in "$@"; do
  if [ "$a" = "--all" ]; then args+=(-m ""); else args+=("$a"); fi
done
exec python -m pytest ${args[@]+"${args[@]}"}
