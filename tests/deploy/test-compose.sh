#!/usr/bin/env bash
# Runs the three knnmem shards of deploy/compose.yaml (podman-compose, or
# `docker compose` with Docker) from the built image knnmem:local, with tokens
# from its secret, and drives them with the host's CLI and --servers:
#   - every shard SERVING; a call without a token UNAUTHENTICATED
#   - 12 streams created, appended and listed through --servers; each lives
#     on the shard `where` names and no other; a search on each shard equals
#     brute force; each shard's metrics count its own streams
#   - every shard's HEALTHCHECK passes; a shard stopped (SIGTERM) exits 0 and
#     only its streams become UNAVAILABLE
# Prometheus and Grafana are not started: their images come from a registry
# (tests/deploy/check-deploy.sh lints their configuration).
#
#   tests/deploy/test-compose.sh
# Environment: KNNMEM_CLI (default build/client/knnmem). Uses the compose
# file's host ports, 127.0.0.1:50051-50053 and 9464-9466: they must be free.
set -euo pipefail
cd "$(dirname "$0")/../.."
cli="$(realpath "${KNNMEM_CLI:-build/client/knnmem}")"
python=/usr/bin/python3
check() { "$python" tests/deploy/image_check.py "$@"; }
[ -x "$cli" ] || { echo "test-compose: no CLI at $cli" >&2; exit 1; }
engine="$(scripts/container-engine)"
# Every engine call is bounded. Podman 4.3 without systemd logs that it
# cannot start healthcheck timers: noise here (`healthcheck run` is used).
e() { timeout 120 "$engine" "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }
if [ "$engine" = podman ]; then compose=(podman-compose); else compose=(docker compose); fi

project="knnmem-test-$$"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/$project.XXXXXX")"
# Absolute: podman-compose 1.0.3 resolves a relative secret file from the
# current directory, not the compose file's.
export KNNMEM_TOKENS_FILE="$tmp/secrets/knnmem-tokens"
export GRAFANA_ADMIN_PASSWORD="unused-$$"  # required by the file; Grafana is not started
c() { timeout 300 "${compose[@]}" -p "$project" -f deploy/compose.yaml "$@"; }
cleanup() {
  c down -v >/dev/null 2>&1 || true
  e network rm -f "${project}_default" >/dev/null 2>&1 || true  # podman-compose leaves it
  rm -rf "$tmp"
}

passed=0
ok() { echo "ok:   $*"; passed=$((passed + 1)); }
die() { echo "test-compose: FAIL: $*" >&2; exit 1; }
knnmem() { timeout 120 "$cli" --deadline-ms 20000 "$@"; }

for port in 50051 50052 50053 9464 9465 9466; do
  "$python" -c "import socket; socket.socket().bind(('127.0.0.1', $port))" 2>/dev/null ||
    die "127.0.0.1:$port is taken; deploy/compose.yaml publishes it"
done
e image inspect knnmem:local >/dev/null || die "no image knnmem:local (make image)"
scripts/make-tokens "$tmp/secrets" >/dev/null
rw="$tmp/secrets/rw-token"

trap cleanup EXIT
c up -d --no-build knnmem-0 knnmem-1 knnmem-2 >"$tmp/up.log" 2>&1 ||
  { cat "$tmp/up.log" >&2; die "compose up of the three shards"; }
container() {  # SERVICE: its container's id
  local id
  for id in $(e ps -aq --filter "label=com.docker.compose.project=$project"); do
    if [ "$(e inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$id")" = "$1" ]; then
      echo "$id"
      return
    fi
  done
  die "no container of service $1"
}
for i in 0 1 2; do
  end=$((SECONDS + 90))
  until knnmem --server "127.0.0.1:$((50051 + i))" health >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || die "knnmem-$i: not SERVING within 90 s: $(e logs "$(container "knnmem-$i")" 2>&1 | tail -5)"
    sleep 0.2
  done
done
servers="shard-0=127.0.0.1:50051,shard-1=127.0.0.1:50052,shard-2=127.0.0.1:50053"
knnmem --servers "$servers" health >/dev/null
ok "knnmem-0..2 SERVING (knnmem --servers ... health)"
out=$(knnmem --server 127.0.0.1:50051 list 2>&1) && die "list without a token succeeded: $out"
[[ "$out" == *UNAUTHENTICATED* ]] || die "list without a token: $out"
ok "tokens from the compose secret are in force: no token is UNAUTHENTICATED"

declare -A shard_of count
for s in $(seq 0 11); do
  knnmem --servers "$servers" --token-file "$rw" create "stream-$s" \
    --layers 1 --heads 2 --key-dim 32 --value-dim 8 --capacity 1024 >/dev/null
  knnmem --servers "$servers" --token-file "$rw" append "stream-$s" --random 500 --seed "$s" >/dev/null
  shard_of[$s]=$(knnmem --servers "$servers" where "stream-$s" | awk '{print $1}')
  count[${shard_of[$s]}]=$(( ${count[${shard_of[$s]}]:-0} + 1 ))
done
listed=$(knnmem --servers "$servers" --token-file "$rw" --json list | "$python" -c 'import json, sys; print(len(json.load(sys.stdin)))')
[ "$listed" = 12 ] || die "list through --servers shows $listed streams, want 12"
ok "12 streams created and appended through --servers; list shows 12; per shard: ${count[shard-0]:-0} ${count[shard-1]:-0} ${count[shard-2]:-0}"
for i in 0 1 2; do [ "${count[shard-$i]:-0}" -gt 0 ] || die "no stream routed to shard-$i"; done

for s in $(seq 0 11); do
  for i in 0 1 2; do
    rc=0
    out=$(knnmem --server "127.0.0.1:$((50051 + i))" --token-file "$rw" info "stream-$s" 2>&1) || rc=$?
    if [ "${shard_of[$s]}" = "shard-$i" ]; then
      [ $rc -eq 0 ] || die "stream-$s: not on shard-$i where --servers routed it: $out"
    else
      [[ "$out" == *NOT_FOUND* ]] || die "stream-$s: shard-$i (not its shard) answers: $out"
    fi
  done
done
ok "each stream is on the shard 'where' names and on no other"

declare -A searched
for s in $(seq 0 11); do
  [ -z "${searched[${shard_of[$s]}]:-}" ] || continue
  searched[${shard_of[$s]}]=1
  knnmem --servers "$servers" --token-file "$rw" --json search "stream-$s" --random 2 --seed 99 --k 8 >"$tmp/search.json"
  check search 500 "$s" 2 99 8 2 32 "$tmp/search.json" | sed "s/^ok:   /ok:   ${shard_of[$s]} stream-$s: /"
done

for i in 0 1 2; do
  n=${count[shard-$i]}
  want=("http://127.0.0.1:$((9464 + i))/metrics" "knnmem_streams=$n" "knnmem_stored_vectors=$((n * 1000))")
  end=$((SECONDS + 30))
  until check metrics "${want[@]}" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || break
    sleep 0.2
  done
  check metrics "${want[@]}" || die "knnmem-$i: its metrics do not count its $n streams"
done

for i in 0 1 2; do
  id=$(container "knnmem-$i")
  if [ "$engine" = podman ]; then
    e healthcheck run "$id" || die "knnmem-$i: healthcheck run failed"
  else
    [ "$(e inspect -f '{{.State.Health.Status}}' "$id")" != unhealthy ] || die "knnmem-$i: unhealthy"
  fi
done
ok "every shard's HEALTHCHECK passes"

# stop_grace_period is not read by podman-compose 1.0.3: give the time here.
c stop -t 30 knnmem-1 >/dev/null 2>&1 || die "compose stop knnmem-1"
state=$(e inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$(container knnmem-1)")
[ "$state" = "exited 0" ] || die "knnmem-1: '$state' after stop, want 'exited 0'"
for s in $(seq 0 11); do
  rc=0
  out=$(knnmem --servers "$servers" --token-file "$rw" info "stream-$s" 2>&1) || rc=$?
  if [ "${shard_of[$s]}" = shard-1 ]; then
    [[ "$out" == *UNAVAILABLE* ]] || die "stream-$s on the stopped shard-1: $out"
  else
    [ $rc -eq 0 ] || die "stream-$s on ${shard_of[$s]} failed while shard-1 is down: $out"
  fi
done
ok "knnmem-1 stopped (exit 0): only its ${count[shard-1]} streams are UNAVAILABLE"

echo
echo "test-compose: all checks passed ($project, ${compose[*]})"
echo "test-compose: $passed passed, 0 failed"
