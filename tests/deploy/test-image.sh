#!/usr/bin/env bash
# Runs knnmem's built image and checks it (make test-image builds it first):
#   - its config: user 10001, ports, /data, HEALTHCHECK, CMD with tokens and
#     no --insecure, the size under its budget, and deploy/compose.yaml and
#     the rendered deploy/k8s agree with it (image_check.py config)
#   - secure by default: without the token file it does not start; on
#     0.0.0.0 without tokens it starts only with an explicit --insecure
#   - with tokens: health SERVING through the published port; no token is
#     UNAUTHENTICATED, a read-only one cannot create; create / append /
#     search with the host's CLI equal brute force; the metrics port counts
#     what was stored; the server runs as uid 10001; `healthcheck run`
#     passes; SIGTERM (stop) exits 0 within drain + grace
#   - the volume outlives the container: a new one on it answers the same
#     search byte for byte, with rotated tokens (old and new accepted), then
#     with the old ones retired by SIGHUP in the running container (refused)
#   - podman only: the StatefulSet's pod spec (read-only root, no
#     capabilities, uid 10001) runs under `podman play kube` on the volume
#
#   tests/deploy/test-image.sh
# Environment: KNNMEM_IMAGE (default knnmem:local), KNNMEM_CLI (default
# build/client/knnmem), KNNMEM_IMAGE_BUDGET_MB (default 250: see README
# "Deploy"). Containers publish on 127.0.0.1 only, on free ports.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
image="${KNNMEM_IMAGE:-knnmem:local}"
cli="$(realpath "${KNNMEM_CLI:-build/client/knnmem}")"
budget_mb="${KNNMEM_IMAGE_BUDGET_MB:-250}"
python=/usr/bin/python3
check() { "$python" tests/deploy/image_check.py "$@"; }

[ -x "$cli" ] || { echo "test-image: no CLI at $cli (build it: cmake --build build --target knnmem)" >&2; exit 1; }
"$python" -c 'import numpy, yaml' 2>/dev/null ||
  { echo "test-image: $python lacks numpy or yaml (scripts/install-deps image-test)" >&2; exit 1; }
engine="$(scripts/container-engine)"
# Every engine call is bounded. Podman 4.3 without systemd logs that it
# cannot start healthcheck timers: noise here (`healthcheck run` is used).
e() { timeout 120 "$engine" "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }

id="knnmem-test-$$"
vol="$id-data"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/$id.XXXXXX")"
containers=()
cleanup() {
  if [ "$engine" = podman ] && [ -f "$tmp/pod.yaml" ]; then e play kube --down "$tmp/pod.yaml" >/dev/null 2>&1 || true; fi
  for c in "${containers[@]}"; do e rm -f -v "$c" >/dev/null 2>&1 || true; done
  e volume rm -f "$vol" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
passed=0
ok() { echo "ok:   $*"; passed=$((passed + 1)); }
die() { echo "test-image: FAIL: $*" >&2; exit 1; }

# wait_until SECONDS WHAT COMMAND...: polls COMMAND until it succeeds.
wait_until() {
  local secs=$1 what=$2 end=$((SECONDS + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || die "$what: not within ${secs}s"
    sleep 0.2
  done
}

# knnmem ADDRESS TOKEN_FILE|- ARGS...: the host's CLI against a container.
knnmem() {
  local addr=$1 token=$2
  shift 2
  if [ "$token" = - ]; then
    timeout 120 "$cli" --server "$addr" --deadline-ms 20000 "$@"
  else
    timeout 120 "$cli" --server "$addr" --deadline-ms 20000 --token-file "$token" "$@"
  fi
}

# expect_fail CODE WHAT COMMAND...: COMMAND exits non-zero printing CODE.
expect_fail() {
  local code=$1 what=$2 out rc=0
  shift 2
  out=$("$@" 2>&1) || rc=$?
  [ $rc -ne 0 ] && [[ "$out" == *"$code"* ]] || die "$what: want a failure with $code, got exit $rc: $out"
  ok "$what: $code"
}

# start NAME TOKENS_FILE [ARGS...]: runs the image detached on the test volume.
start() {
  local name=$1 tokens=$2
  shift 2
  containers+=("$name")
  e run -d --name "$name" -p 127.0.0.1::50051 -p 127.0.0.1::9464 -v "$vol:/data" \
    -v "$tokens:/run/secrets/knnmem-tokens:ro" "$image" "$@" >/dev/null
}

# address NAME PORT: the host address a container port is published on.
address() { e port "$1" "$2/tcp" | head -1; }

# serving NAME ADDRESS: waits for health SERVING, failing early if it exits.
serving() {
  local end=$((SECONDS + 90))
  until knnmem "$2" - health >/dev/null 2>&1; do
    [ "$(e inspect -f '{{.State.Running}}' "$1")" = true ] ||
      die "$1 exited: $(e logs "$1" 2>&1 | tail -5)"
    [ $SECONDS -lt $end ] || die "$1: health not SERVING within 90 s"
    sleep 0.2
  done
  ok "$1: health SERVING at $2"
}

# stop_within NAME SECONDS: SIGTERM; the server exits 0 within SECONDS.
stop_within() {
  local t0 elapsed code
  t0=$(date +%s%N)
  e stop -t $(($2 + 10)) "$1" >/dev/null || die "$1: $engine stop failed"
  elapsed=$(( ($(date +%s%N) - t0) / 1000000 ))
  state=$(e inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$1")
  [ "$state" = "exited 0" ] || die "$1: '$state' after SIGTERM, want 'exited 0': $(e logs "$1" 2>&1 | tail -5)"
  [ "$elapsed" -lt $(($2 * 1000)) ] || die "$1: SIGTERM took ${elapsed} ms, over drain + grace ($2 s)"
  e logs "$1" 2>&1 | grep -q "knnmem-server: stopped" || die "$1: no 'stopped' line in its log"
  ok "$1: SIGTERM -> exit 0 in ${elapsed} ms (drain + grace: $2 s)"
}

step "image config, size, compose and Kubernetes against it"
e image inspect "$image" >"$tmp/inspect.json" || die "no image $image (make image)"
if command -v kubectl >/dev/null; then
  timeout 120 kubectl kustomize deploy/k8s >"$tmp/k8s.yaml" || die "kubectl kustomize deploy/k8s"
  k8s_how="kubectl kustomize"
else
  for f in $(sed -n 's/^  - \(.*\.yaml\)$/\1/p' deploy/k8s/kustomization.yaml); do
    cat "deploy/k8s/$f"
    echo ---
  done >"$tmp/k8s.yaml"
  k8s_how="resources unrendered: kubectl is not installed"
fi
check config "$tmp/inspect.json" "$root" "$tmp/k8s.yaml" "$budget_mb"
ok "deploy/k8s read with $k8s_how"

step "secure by default"
rc=0
out=$(timeout 120 "$engine" run --rm "$image" 2>&1) || rc=$?
[ $rc -ne 0 ] && [[ "$out" == *"cannot read '/run/secrets/knnmem-tokens'"* ]] ||
  die "the image without a token file: want a refusal naming it, got exit $rc: $out"
ok "no token file: refuses to start (exit $rc): $(grep 'cannot read' <<<"$out")"
rc=0
out=$(timeout 120 "$engine" run --rm "$image" --listen 0.0.0.0:50051 --data-dir /data 2>&1) || rc=$?
[ $rc -ne 0 ] && [[ "$out" == *"needs --insecure"* ]] ||
  die "0.0.0.0 without tokens: want a refusal asking for --insecure, got exit $rc: $out"
ok "0.0.0.0 without tokens: refuses (exit $rc)"
containers+=("$id-insecure")
e run -d --name "$id-insecure" -p 127.0.0.1::50051 "$image" \
  --listen 0.0.0.0:50051 --metrics-address none --data-dir /tmp/data --insecure >/dev/null
serving "$id-insecure" "$(address "$id-insecure" 50051)"
ok "0.0.0.0 without tokens and with an explicit --insecure: serves"
e rm -f -v "$id-insecure" >/dev/null

step "a server with tokens on a volume"
scripts/make-tokens "$tmp/secrets" >/dev/null
cp "$tmp/secrets/rw-token" "$tmp/old-rw-token"
e volume create "$vol" >/dev/null
start "$id-1" "$tmp/secrets/knnmem-tokens"
grpc=$(address "$id-1" 50051)
metrics=$(address "$id-1" 9464)
serving "$id-1" "$grpc"
expect_fail UNAUTHENTICATED "list without a token" knnmem "$grpc" - list
expect_fail PERMISSION_DENIED "create with the read-only token" \
  knnmem "$grpc" "$tmp/secrets/ro-token" create x --layers 1 --heads 1 --key-dim 4 --value-dim 4 --capacity 8

step "create / append / search through $grpc equal brute force"
rw="$tmp/secrets/rw-token"
knnmem "$grpc" "$rw" create doc --layers 1 --heads 4 --key-dim 64 --value-dim 32 --capacity 4096
knnmem "$grpc" "$rw" append doc --random 3000 --seed 7
knnmem "$grpc" "$rw" --json search doc --random 3 --seed 9 --k 16 >"$tmp/search-1.json"
check search 3000 7 3 9 16 4 64 "$tmp/search-1.json"

step "metrics at $metrics"
want_metrics=(knnmem_streams=1 knnmem_stored_vectors=12000 knnmem_appended_vectors_total=12000)
wait_until 30 "metrics of the stored stream" check metrics "http://$metrics/metrics" "${want_metrics[@]}"
check metrics "http://$metrics/metrics" "${want_metrics[@]}"
"$python" tests/deploy/deploy_check.py metrics "$root" "http://$metrics/metrics"

step "process user, HEALTHCHECK, SIGTERM"
pid=$(e inspect -f '{{.State.Pid}}' "$id-1")
[ "$(cat "/proc/$pid/comm")" = knnmem-server ] || die "$id-1: pid $pid is $(cat "/proc/$pid/comm"), not knnmem-server"
ids=$(awk '/^(Uid|Gid):/ {print $2, $3, $4, $5}' "/proc/$pid/status" | tr '\n' ' ')
[ "$ids" = "10001 10001 10001 10001 10001 10001 10001 10001 " ] || die "$id-1: uids and gids '$ids', want all 10001"
ok "$id-1: knnmem-server runs as uid and gid 10001"
if [ "$engine" = podman ]; then
  e healthcheck run "$id-1" || die "$id-1: podman healthcheck run failed"
  ok "$id-1: podman healthcheck run passes"
else
  wait_until 60 "$id-1: HEALTHCHECK healthy" \
    bash -c "[ \"\$(timeout 60 docker inspect -f '{{.State.Health.Status}}' $id-1)\" = healthy ]"
  ok "$id-1: docker reports the HEALTHCHECK healthy"
fi
# The image's defaults: --drain-seconds 0, --grace-seconds 20.
stop_within "$id-1" 20
e rm -v "$id-1" >/dev/null
e volume inspect "$vol" >/dev/null || die "volume $vol did not outlive its container"
ok "volume $vol outlives $id-1"

step "a new container on the volume, with rotated tokens"
scripts/make-tokens --rotate "$tmp/secrets" >/dev/null
start "$id-2" "$tmp/secrets/knnmem-tokens"
grpc=$(address "$id-2" 50051)
serving "$id-2" "$grpc"
knnmem "$grpc" "$rw" --json search doc --random 3 --seed 9 --k 16 >"$tmp/search-2.json"
cmp -s "$tmp/search-1.json" "$tmp/search-2.json" || die "$id-2: the search answers differently on the same volume"
ok "$id-2: the same search answers byte for byte ($(wc -c <"$tmp/search-2.json") bytes)"
knnmem "$grpc" "$tmp/old-rw-token" info doc >/dev/null || die "$id-2: the old token is refused mid-rotation"
ok "$id-2: the old and the new rw token both work mid-rotation"

step "the old tokens retired by SIGHUP, without a restart"
scripts/make-tokens --retire "$tmp/secrets" >/dev/null
e kill -s HUP "$id-2" >/dev/null
reloaded() { e logs "$id-2" 2>&1 | grep -m1 'reloaded /run/secrets/knnmem-tokens: 2 token(s)'; }
wait_until 30 "$id-2: the token file reloaded" reloaded
ok "$id-2: $(reloaded)"
expect_fail UNAUTHENTICATED "the retired token" knnmem "$grpc" "$tmp/old-rw-token" info doc
knnmem "$grpc" "$rw" --json search doc --random 3 --seed 9 --k 16 >"$tmp/search-3.json"
cmp -s "$tmp/search-1.json" "$tmp/search-3.json" || die "$id-2: the search answers differently"
ok "$id-2: the current token answers the same search"
stop_within "$id-2" 20
e rm -v "$id-2" >/dev/null

if [ "$engine" = podman ]; then
  step "the StatefulSet's pod under podman play kube"
  # The Secret's files as Kubernetes projects them: group 10001, 0440.
  install -d -m 0750 -g 10001 "$tmp/pod-secrets"
  install -m 0440 -g 10001 "$tmp/secrets/knnmem-tokens" "$tmp/pod-secrets/knnmem-tokens"
  read -r gport mport < <("$python" -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
  KNNMEM_IMAGE="$image" check pod "$tmp/k8s.yaml" "$tmp/pod-secrets" "$gport" "$mport" "$id-pod" "$vol" "$tmp/pod.yaml"
  e play kube "$tmp/pod.yaml" >/dev/null || die "podman play kube of the StatefulSet's pod"
  ctr="$id-pod-knnmem"
  serving "$ctr" "127.0.0.1:$gport"
  knnmem "127.0.0.1:$gport" "$rw" --json search doc --random 3 --seed 9 --k 16 >"$tmp/search-4.json"
  cmp -s "$tmp/search-1.json" "$tmp/search-4.json" || die "the pod answers the search differently"
  ok "the pod serves the volume: the same search"
  [ "$(e inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$ctr")" = true ] || die "$ctr: root filesystem writable"
  pid=$(e inspect -f '{{.State.Pid}}' "$ctr")
  status=$(awk '/^(Uid|CapEff):/ {print $1, $2}' "/proc/$pid/status" | tr '\n' ' ')
  [ "$status" = "Uid: 10001 CapEff: 0000000000000000 " ] || die "$ctr: '$status', want uid 10001 and no capabilities"
  ok "$ctr: read-only root, uid 10001, no capabilities (securityContext applied)"
  check metrics "http://127.0.0.1:$mport/metrics" knnmem_streams=1 knnmem_stored_vectors=12000
  stop_within "$ctr" 20
  e play kube --down "$tmp/pod.yaml" >/dev/null
  rm -f "$tmp/pod.yaml"
fi

echo
echo "test-image: all checks passed ($image, $engine)"
echo "test-image: $passed passed, 0 failed"
