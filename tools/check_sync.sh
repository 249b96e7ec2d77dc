#!/usr/bin/env bash
# Fail if regenerating the derived files (exported modules, cleaned notebooks, README) changes the tree.
set -euo pipefail
bin=${VENV:-.venv}/bin
snapshot() { git status --porcelain=v1 --untracked-files=all; git diff --no-ext-diff; }
before=$(snapshot | sha1sum)
"$bin/nbdev_export"
"$bin/nbdev_clean"
"$bin/nbdev_clean" --fname index.ipynb
"$bin/python" tools/make_readme.py
after=$(snapshot | sha1sum)
if [ "$before" != "$after" ]; then
  echo "ERROR: nbdev_export / nbdev_clean / tools/make_readme.py changed tracked files." >&2
  echo "Run 'make sync' and commit the result:" >&2
  git status --short >&2
  exit 1
fi
echo "generated files are in sync"
