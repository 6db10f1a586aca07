#!/usr/bin/env bash
# The integration tests drive the gateway with swaks (Debian package). Install it when missing.
set -euo pipefail
command -v swaks >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing swaks (apt-get) for the integration tests" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq swaks >/dev/null
else
  echo "the integration tests need swaks: sudo apt-get install -y swaks" >&2
  exit 1
fi
