#!/usr/bin/env bash
# Checks the deployment files: deploy/ (compose, Kubernetes, Prometheus,
# Grafana) and the Dockerfile.
#
#   tests/deploy/check-deploy.sh [METRICS_URL]
#
# Without an argument, the static checks:
#   - yamllint --strict (config deploy/.yamllint) on every YAML under deploy/
#   - promtool check config / check rules / test rules (deploy/prometheus)
#   - every Grafana dashboard JSON parses and is well-formed
#   - every metric the dashboard and the alert rules use is in the server's
#     metrics contract (tests/deploy/deploy_check.py)
#   - the Dockerfile's build stage runs scripts/install-deps (what CI runs) and
#     builds knnmem-server and knnmem only; when a build exists
#     ($KNNMEM_BUILD_DIR, default build/), the runtime stage installs the
#     package of every library the binaries link
#   - compose.yaml, prometheus.yml and deploy/k8s agree (shards, ports, args,
#     probes, selectors) and are secure by default (tokens from a secret,
#     loopback-only ports in compose, no --insecure); `kubectl kustomize
#     deploy/k8s` renders, if kubectl is installed
# The image itself is built and run by `make test-image` (test-image.sh).
# With METRICS_URL (e.g. http://127.0.0.1:9464/metrics), also: the scrape at
# that URL exports every metric name the dashboard and alert rules use.
#
# Needs: yamllint and prometheus (promtool) from Debian:
#   apt-get install --no-install-recommends yamllint prometheus
# Exit status: 0 when every check passes, 1 when one fails, 2 for a usage
# error, 77 when a needed tool is missing (ctest's SKIP_RETURN_CODE, if wanted).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
build_dir="${KNNMEM_BUILD_DIR:-$root/build}"
python=/usr/bin/python3  # Debian's interpreter: sees python3-yaml (yamllint's dependency)

if [ $# -gt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
metrics_url="${1:-}"

failed=()
step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; failed+=("$*"); }

# Runs a command; on failure records the step as failed.
run() {
  local what="$1"
  shift
  if "$@"; then
    echo "ok:   $what"
  else
    fail "$what"
  fi
}

missing=()
command -v yamllint >/dev/null || missing+=("yamllint (apt-get install yamllint)")
command -v promtool >/dev/null || missing+=("promtool (apt-get install prometheus, or scripts/install-deps monitoring)")
if [ -x "$python" ]; then
  "$python" -c 'import yaml' 2>/dev/null || missing+=("python3-yaml for $python (apt-get install python3-yaml)")
else
  missing+=("$python (apt-get install python3-minimal)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  printf 'check-deploy: missing tool: %s\n' "${missing[@]}" >&2
  exit 77
fi

step "yamllint"
mapfile -t yaml_files < <(yamllint -c deploy/.yamllint --list-files deploy/ | sort)
if [ ${#yaml_files[@]} -eq 0 ]; then
  fail "yamllint found no YAML files under deploy/"
else
  run "yamllint --strict: ${#yaml_files[@]} files under deploy/" \
    yamllint --strict -c deploy/.yamllint "${yaml_files[@]}"
fi

step "promtool"
run "promtool check config deploy/prometheus/prometheus.yml" \
  promtool check config deploy/prometheus/prometheus.yml
run "promtool check rules deploy/prometheus/alerts.yml" \
  promtool check rules deploy/prometheus/alerts.yml
run "promtool test rules deploy/prometheus/alerts_test.yml" \
  promtool test rules deploy/prometheus/alerts_test.yml

step "Grafana dashboards"
shopt -s nullglob
dashboards=(deploy/grafana/dashboards/*.json)
if [ ${#dashboards[@]} -eq 0 ]; then
  fail "no dashboard JSON under deploy/grafana/dashboards/"
fi
for d in "${dashboards[@]}"; do
  run "$d parses as JSON" "$python" -m json.tool "$d" /dev/null
done

step "dashboard, contract, Dockerfile, compose and Kubernetes consistency"
run "tests/deploy/deploy_check.py static" \
  "$python" tests/deploy/deploy_check.py static "$root" "$build_dir"

if command -v kubectl >/dev/null; then
  run "kubectl kustomize deploy/k8s renders" \
    bash -c 'kubectl kustomize deploy/k8s >/dev/null'
else
  echo "skip: kubectl not installed; deploy/k8s not rendered"
fi

if [ -n "$metrics_url" ]; then
  step "metrics exported by $metrics_url"
  run "every metric used by the dashboard and alert rules is exported" \
    "$python" tests/deploy/deploy_check.py metrics "$root" "$metrics_url"
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
  printf 'check-deploy: %d check(s) failed:\n' "${#failed[@]}" >&2
  printf '  - %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "check-deploy: all checks passed"
