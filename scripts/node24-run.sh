#!/usr/bin/env bash
# Runs a command with Node.js 24 first on PATH: the machine's node when it is 24 or newer, else the
# official binary from the npm registry (scripts/node24.sh). The README's two commands go through
# it, so that they work on a machine whose Node is older.
#   bash scripts/node24-run.sh COMMAND [ARG…]
set -eo pipefail
. "$(dirname "$0")/node24.sh"
exec "$@"
