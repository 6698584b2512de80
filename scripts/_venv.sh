# Sourced by scripts/demo.sh and scripts/test.sh: find Python >= 3.11, create ./.venv and
# install churnml with its dev extra there (pinned by constraints.txt), again only when
# pyproject.toml or constraints.txt has changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHURNML_VENV:-$ROOT/.venv}"

find_python() {
  for cand in "${PYTHON:-}" python3.13 python3.12 python3.11 python3 python; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 && \
       "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  echo "churnml needs Python 3.11 or newer on PATH (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  PY="$(find_python)"
  echo "[churnml] creating virtual environment $VENV with $PY" >&2
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.churnml-installed"
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | cksum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "[churnml] installing churnml and its dependencies into $VENV (first run takes a minute or two)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
  # constraints.txt pins every dependency to the versions the test suite last passed with
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c "$ROOT/constraints.txt" -e "$ROOT[dev]"
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
