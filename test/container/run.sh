#!/usr/bin/env bash
# Container acceptance suite: builds the image, runs it with a test policy and test
# certificates (--network=host), and drives the seed scenarios with swaks.
#   npm run test:container         (root: it may start dockerd and build a local base image)
# Exit 0 with a SKIP line when no Docker engine can be had.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BASE_IMAGE="${BASE_IMAGE:-}"
IMAGE=connector-gateway:test
NAME=cg-container-test-$$
VOLUME=cg-container-queue-$$
MX=12525 ADMIN=18025 ONPREM=12626 PARTNER=12627

say() { printf '%s\n' "$*"; }
skip() { say "SKIP container suite: $*"; exit 0; }

# 1. A Docker engine (Debian's docker.io; started here when not running). A machine may have the
#    docker client alone (no engine): the engine is installed then too.
if ! command -v docker >/dev/null 2>&1 || { ! command -v dockerd >/dev/null 2>&1 && ! docker info >/dev/null 2>&1; }; then
  [ "$(id -u)" = 0 ] || skip "no Docker engine and not root to install it"
  apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null 2>&1 || skip "docker.io could not be installed"
fi
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null 2>&1 || skip "no dockerd"
  (setsid dockerd --iptables=false --bridge=none >/tmp/dockerd.log 2>&1 &)
  for _ in $(seq 1 30); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || skip "dockerd did not start (see /tmp/dockerd.log)"
fi

# 2. A base image: the public one when present, else one built locally (no registry here).
if [ -z "$BASE_IMAGE" ]; then
  if docker image inspect node:24-bookworm-slim >/dev/null 2>&1; then BASE_IMAGE=node:24-bookworm-slim
  else
    tool="$ROOT/../shared/tools/offline-node-image.sh"
    [ -x "$tool" ] || [ -f "$tool" ] || skip "no node:24-bookworm-slim image and no $tool to build one"
    # The tool copies npm from `npm root -g` and fetches Node 24 itself: run it on the machine's own
    # PATH, not with scripts/node24.sh's Node first (that package has no npm in it).
    machine_path=$(tr ':' '\n' <<<"$PATH" | grep -v '/node-linux-[a-z0-9]*-24/package/bin$' | paste -sd: -)
    BASE_IMAGE=$(env -u npm_config_nodedir PATH="$machine_path" bash "$tool" | tail -n 1) || skip "could not build a local base image"
  fi
fi
say "base image: $BASE_IMAGE"

# 3. The image.
if ! docker build -q --network=host --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$IMAGE" . >/tmp/cg-docker-build.log 2>&1; then
  cat /tmp/cg-docker-build.log; say "0 passed, 1 failed"; exit 1
fi
say "image size: $(docker image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1000000}')"

# 4. Test policy, certificates and sinks.
[ -f dist/cli/main.js ] || npm run build >/dev/null
WORK=$(mktemp -d /tmp/cg-container-XXXXXX)
node dist/cli/main.js dev-certs --dir "$WORK/etc/certs" >/dev/null
# As the README says: the keys stay 0600 and belong to the image's user (uid 999).
chown -R 999:999 "$WORK/etc/certs"
cat >"$WORK/etc/gateway.yaml" <<YAML
gateway:
  hostname: mx1.contoso.test
  listeners: [{ name: mx, address: 127.0.0.1, port: $MX }]
  tls:
    certificate: /etc/connector-gateway/certs/gateway.crt
    key: /etc/connector-gateway/certs/gateway.key
    clientCertificateAuthorities: /etc/connector-gateway/certs/dev-ca.crt
  queue: { directory: /var/lib/connector-gateway/queue, retryIntervals: [2s] }
  admin: { address: 127.0.0.1, port: $ADMIN }
  dns: { servers: ["127.0.0.1:9"] }
acceptedDomains:
  - domain: contoso.com
inboundConnectors:
  - { name: ContosoBank TLS, connectorType: partner, senderDomains: [contosobank.com], requireTls: true }
  - { name: Fabrikam cert, connectorType: partner, senderDomains: [fabrikam.com], requireTls: true, restrictDomainsToCertificate: true, tlsSenderCertificateName: "*.fabrikam.com" }
  - { name: Woodgrove IP, connectorType: partner, senderDomains: [woodgrovebank.com], senderIPAddresses: [127.0.0.2], restrictDomainsToIPAddresses: true }
  - { name: OnPrem IP, connectorType: onPremises, senderIPAddresses: [127.0.0.10] }
outboundConnectors:
  - { name: To on-prem, connectorType: onPremises, allAcceptedDomains: true, smartHosts: ["[127.0.0.1]:$ONPREM"], tlsSettings: encryptionOnly }
  - { name: To partner, connectorType: partner, recipientDomains: [partner.test], smartHosts: ["[127.0.0.1]:$PARTNER"], tlsSettings: certificateValidation, tlsCertificateAuthorities: /etc/connector-gateway/certs/dev-ca.crt }
YAML
node test/container/sink.mjs $ONPREM "$WORK/etc/certs/gateway.crt" "$WORK/etc/certs/gateway.key" "$WORK/onprem.jsonl" & SINK1=$!
node test/container/sink.mjs $PARTNER "$WORK/etc/certs/gateway.crt" "$WORK/etc/certs/gateway.key" "$WORK/partner.jsonl" & SINK2=$!
touch "$WORK/onprem.jsonl" "$WORK/partner.jsonl"

cleanup() {
  docker rm -f "$NAME" >/dev/null 2>&1
  docker volume rm "$VOLUME" >/dev/null 2>&1
  kill $SINK1 $SINK2 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

pass=0 fail=0
check() { # name, command…  (the command's success is the check)
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); say "ok   $name"; else fail=$((fail + 1)); say "FAIL $name"; fi
}
# The final reply line to the command matching $2 in a swaks transcript.
reply_to() { awk -v c="$2" '/^ *(->|~>) /{cmd=$0; next} /^ *(<-|<~|<\*\*|<~\*) /{ if (c == "." ? cmd ~ /^ *(->|~>) \.$/ : index(cmd, c)) last=$0 } END{print last}' <<<"$1"; }
sw() { swaks --server 127.0.0.1:$MX --timeout 15 "$@" 2>&1; }
matches() { grep -Eq "$2" <<<"$1" || { say "     got: $1"; return 1; }; }

# 5. Run it.
docker run -d --name "$NAME" --network=host -e ADMIN_PORT=$ADMIN \
  -v "$WORK/etc:/etc/connector-gateway:ro" -v "$VOLUME:/var/lib/connector-gateway" "$IMAGE" >/dev/null
for _ in $(seq 1 60); do
  [ "$(docker inspect -f '{{.State.Health.Status}}' "$NAME" 2>/dev/null)" = healthy ] && break; sleep 1
done
check "container becomes healthy (HEALTHCHECK via the admin port)" test "$(docker inspect -f '{{.State.Health.Status}}' "$NAME")" = healthy
[ "$(docker inspect -f '{{.State.Health.Status}}' "$NAME" 2>/dev/null)" = healthy ] || { say "     container log:"; docker logs --tail 40 "$NAME" 2>&1 | sed 's/^/     /'; }
check "runs as a non-root user" test "$(docker exec "$NAME" id -u)" != 0
check "policy check inside the image" docker exec "$NAME" node /app/dist/cli/main.js check

t=$(sw --from a@contosobank.com --to user@contoso.com)
check "partner TLS required: plaintext refused 530 5.7.0" matches "$(reply_to "$t" 'MAIL FROM')" '530 5\.7\.0'
t=$(sw --tls --from a@contosobank.com --to user@contoso.com)
check "partner TLS required: STARTTLS accepted" matches "$(reply_to "$t" '.')" '250 2\.6\.0'
t=$(sw --tls --from b@fabrikam.com --to user@contoso.com)
check "partner certificate: none → 550 5.7.51" matches "$(reply_to "$t" 'MAIL FROM')" '550 5\.7\.51'
t=$(sw --tls --tls-cert "$WORK/etc/certs/fabrikam.crt" --tls-key "$WORK/etc/certs/fabrikam.key" --from b@fabrikam.com --to user@contoso.com)
check "partner certificate: verified *.fabrikam.com accepted" matches "$(reply_to "$t" '.')" '250 2\.6\.0'
t=$(sw --local-interface 127.0.0.5 --from c@woodgrovebank.com --to user@contoso.com)
check "IP restriction: outside the range → 550 5.7.51" matches "$(reply_to "$t" 'MAIL FROM')" '550 5\.7\.51'
t=$(sw --local-interface 127.0.0.2 --from c@woodgrovebank.com --to user@contoso.com)
check "IP restriction: inside the range accepted" matches "$(reply_to "$t" '.')" '250 2\.6\.0'
t=$(sw --local-interface 127.0.0.6 --from x@example.org --to someone@partner.test)
check "relay denied from the internet: 550 5.7.64" matches "$(reply_to "$t" 'RCPT TO')" '550 5\.7\.64'
t=$(sw --local-interface 127.0.0.10 --from app@contoso.com --to someone@partner.test)
check "on-premises relay to a partner accepted" matches "$(reply_to "$t" '.')" '250 2\.6\.0'

for _ in $(seq 1 30); do [ "$(wc -l <"$WORK/onprem.jsonl")" -ge 3 ] && [ "$(wc -l <"$WORK/partner.jsonl")" -ge 1 ] && break; sleep 1; done
check "delivered to the on-premises sink over TLS (3 messages)" test "$(grep -c '"secure":true' "$WORK/onprem.jsonl")" -ge 3
check "relayed to the partner sink with a verified certificate" grep -q 'someone@partner.test' "$WORK/partner.jsonl"
check "Received and X-Gateway-Connector headers added" grep -q 'X-Gateway-Connector: Fabrikam cert' "$WORK/onprem.jsonl"
check "metrics scraped from the admin port" matches "$(node -e "fetch('http://127.0.0.1:$ADMIN/metrics').then(r=>r.text()).then(t=>console.log(t))")" 'gateway_refusals_total\{connector="Woodgrove IP",rule="claim-ip"'

docker stop -t 20 "$NAME" >/dev/null
check "docker stop: SIGTERM handled, exit code 0" test "$(docker inspect -f '{{.State.ExitCode}}' "$NAME")" = 0

say "$pass passed, $fail failed"
[ "$fail" = 0 ]
