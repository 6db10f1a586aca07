#!/usr/bin/env bash
# The integration tests drive the gateway with swaks, check its TLS with testssl.sh, and run
# real DNSSEC (zones signed by ldns-signzone, served by nsd, validated by unbound) for DANE
# (Debian packages), put three gateways behind HAProxy (PROXY v2), share limits and the trace
# on redis-server and PostgreSQL, and check DKIM and ARC against dkimpy. Install them when missing.
set -euo pipefail
missing=()
command -v swaks >/dev/null 2>&1 || missing+=(swaks)
command -v testssl >/dev/null 2>&1 || missing+=(testssl.sh)
command -v nsd >/dev/null 2>&1 || [ -x /usr/sbin/nsd ] || missing+=(nsd)
command -v unbound >/dev/null 2>&1 || [ -x /usr/sbin/unbound ] || missing+=(unbound)
command -v ldns-signzone >/dev/null 2>&1 || missing+=(ldnsutils)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
# The shared engines of several gateways (SPEC §12): Redis and PostgreSQL, started by the tests.
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
# dkimpy, the independent DKIM/ARC implementation the sender-authentication tests check against.
/usr/bin/python3 -c 'import dkim, nacl, authres' >/dev/null 2>&1 || missing+=(python3-dkim python3-nacl python3-authres)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (apt-get) for the integration tests" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "the integration tests need: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
