#!/usr/bin/env bash
# Main job end to end on bundled data (CDNOW, shipped inside the lifetimes package).
# Sets itself up on first run (./.venv). Extra arguments go to `churnml run`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
exec churnml run --config configs/cdnow.yaml "$@"
