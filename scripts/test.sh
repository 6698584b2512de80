#!/usr/bin/env bash
# The whole test suite. Sets itself up on first run (./.venv). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
exec python -m pytest "$@"
