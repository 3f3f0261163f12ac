"""Checks of deploy/ and the Dockerfile that need more than a shell one-liner.

Run by tests/deploy/check-deploy.sh with Debian's /usr/bin/python3 (python3-yaml
comes with yamllint). Subcommands, each exiting 1 with FAIL lines on stderr:

  static ROOT [BUILD_DIR]   dashboard, Dockerfile, compose, k8s and contract checks
  metrics ROOT URL          every metric the dashboard and alert rules use is
                            exported by the scrape at URL (http://, file:// or a path)
  names ROOT                print the metric names the dashboard and rules use
"""

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request

import yaml

# The server's metrics contract (DESIGN.md, "Observability"): name -> type.
CONTRACT = {
    "knnmem_requests_total": "counter",
    "knnmem_request_duration_seconds": "histogram",
    "knnmem_streams": "gauge",
    "knnmem_stored_vectors": "gauge",
    "knnmem_ram_bytes": "gauge",
    "knnmem_disk_bytes": "gauge",
    "knnmem_memory_budget_bytes": "gauge",
    "knnmem_evicted_vectors_total": "counter",
    "knnmem_appended_vectors_total": "counter",
    "knnmem_searched_queries_total": "counter",
    "knnmem_worker_queue_depth": "gauge",
    "knnmem_requests_in_flight": "gauge",
    "knnmem_resident_streams": "gauge",
    "knnmem_stream_unloads_total": "counter",
    "knnmem_stream_load_seconds": "histogram",
    "knnmem_rocksdb_write_stall_seconds_total": "counter",
    "knnmem_rocksdb_compaction_pending_bytes": "gauge",
    "knnmem_storage_background_errors_total": "counter",
    "knnmem_storage_writes_stopped": "gauge",
    "knnmem_storage_wal_damaged": "gauge",
    "knnmem_process_resident_memory_bytes": "gauge",
    "knnmem_denied_calls_total": "counter",
    "knnmem_tenant_usage": "gauge",
    "knnmem_tenant_quota": "gauge",
}

# Exported only by a server whose token file names tenants (and a quota for
# knnmem_tenant_quota): a scrape without any knnmem_tenant_usage series is
# not asked for them; one with them must export them all
# (tests/integration/tenant_test.cc scrapes such a server).
TENANT_ONLY = {"knnmem_tenant_usage", "knnmem_tenant_quota"}

# Series Prometheus makes itself; never exported by a target.
SYNTHETIC = {
    "up", "scrape_duration_seconds", "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling", "scrape_series_added",
    "ALERTS", "ALERTS_FOR_STATE",
}

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# Secure by default: tokens from the secret, never --insecure.
TOKENS = "/run/secrets/knnmem-tokens"
SERVER_ARGS = ["--listen", "0.0.0.0:50051", "--metrics-address", "0.0.0.0:9464",
               "--data-dir", "/data", "--auth-token-file", TOKENS]

DASHBOARD_DIR = "deploy/grafana/dashboards"
ALERTS = "deploy/prometheus/alerts.yml"

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, file=sys.stderr)


def ok(msg):
    print("ok:   " + msg)


def finish():
    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


# --------------------------------------------------------------------- PromQL

KEYWORDS = {
    # aggregation operators (may be followed by by/without before the parens)
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
    "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio",
    # binary and modifier keywords
    "and", "or", "unless", "bool", "by", "without", "on", "ignoring",
    "group_left", "group_right", "offset", "atan2",
    # literals
    "inf", "nan", "Inf", "NaN",
}


def promql_metric_names(expr):
    """Metric names (and recording-rule names) referenced by a PromQL expression."""
    s = expr
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', " ", s)  # strings
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # ranges and subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\{[^}]*\}|\$\w+", " ", s)  # Grafana variables
    s = re.sub(r"\boffset\s+-?[0-9smhdwy]+", " ", s)
    s = re.sub(r"@\s*(start\(\)|end\(\)|[0-9.]+)", " ", s)
    # numbers (decimal, exponent, hex) and durations
    s = re.sub(r"(?<![A-Za-z0-9_:])(0[xX][0-9a-fA-F]+|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)"
               r"(ms|[smhdwy])*", " ", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        tok = m.group(0)
        if s[m.end():].lstrip().startswith("("):
            continue  # a function or an aggregation: sum(...), rate(...)
        if tok in KEYWORDS:
            continue
        names.add(tok)
    return names


def split_top_level(s, sep=","):
    depth, parts, cur, quote = 0, [], "", None
    for ch in s:
        if quote:
            cur += ch
            if ch == quote:
                quote = None
            continue
        if ch in "\"'`":
            quote = ch
        elif ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    parts.append(cur)
    return parts


def grafana_variable_exprs(query):
    """PromQL inside a Grafana Prometheus variable query."""
    q = query.strip()
    m = re.fullmatch(r"label_values\((.*)\)", q, re.S)
    if m:
        args = split_top_level(m.group(1))
        return [args[0]] if len(args) == 2 else []
    m = re.fullmatch(r"query_result\((.*)\)", q, re.S)
    if m:
        return [m.group(1)]
    if re.fullmatch(r"(label_names|metrics)\(.*\)", q, re.S):
        return []
    return [q]


def dashboard_exprs(dash):
    exprs = []

    def walk_panels(panels):
        for p in panels or []:
            for t in p.get("targets", []) or []:
                if t.get("expr"):
                    exprs.append(("panel '%s'" % p.get("title"), t["expr"]))
            walk_panels(p.get("panels"))

    walk_panels(dash.get("panels"))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query", "")
        for e in grafana_variable_exprs(q or ""):
            exprs.append(("variable $%s" % v.get("name"), e))
    return exprs


def load_dashboards(root):
    out = []
    d = os.path.join(root, DASHBOARD_DIR)
    for name in sorted(os.listdir(d)):
        if name.endswith(".json"):
            path = os.path.join(d, name)
            with open(path) as f:
                out.append((path, json.load(f)))
    return out


def rule_exprs(root):
    with open(os.path.join(root, ALERTS)) as f:
        doc = yaml.safe_load(f)
    exprs, records = [], set()
    for g in doc.get("groups", []):
        for r in g.get("rules", []):
            what = "rule %s" % (r.get("alert") or r.get("record"))
            exprs.append((what, str(r["expr"])))
            if "record" in r:
                records.add(r["record"])
    return exprs, records


def used_metrics(root):
    """{metric name: [where it is used]}, recording rules resolved away."""
    exprs, records = rule_exprs(root)
    for path, dash in load_dashboards(root):
        exprs += [("%s %s" % (os.path.basename(path), w), e) for w, e in dashboard_exprs(dash)]
    used = {}
    for where, e in exprs:
        for n in promql_metric_names(e):
            used.setdefault(n, []).append(where)
    undefined = sorted(n for n in used if ":" in n and n not in records)
    for n in undefined:
        fail("recording rule %s is used (%s) but not defined in %s"
             % (n, ", ".join(sorted(set(used[n]))), ALERTS))
    return {n: w for n, w in used.items() if n not in records and n not in SYNTHETIC}


def family_of(name, types):
    """The metric family a series name belongs to, given {family: type}."""
    if name in types:
        return name
    for suf in HISTOGRAM_SUFFIXES:
        if name.endswith(suf) and types.get(name[: -len(suf)]) in ("histogram", "summary"):
            return name[: -len(suf)]
    return None


# --------------------------------------------------------------------- static

def check_dashboards(root):
    for path, dash in load_dashboards(root):
        rel = os.path.relpath(path, root)
        if not dash.get("uid") or not dash.get("title"):
            fail("%s: dashboard needs a uid and a title" % rel)
        if not 30 <= int(dash.get("schemaVersion", 0)) <= 45:
            fail("%s: schemaVersion %s is not a Grafana 9-11 schema" % (rel, dash.get("schemaVersion")))
        ids = [p.get("id") for p in dash.get("panels", [])]
        if len(ids) != len(set(ids)):
            fail("%s: duplicate panel ids" % rel)
        for p in dash.get("panels", []):
            if p.get("type") == "row":
                continue
            if not p.get("targets"):
                fail("%s: panel '%s' has no query" % (rel, p.get("title")))
            ds = p.get("datasource") or {}
            if ds.get("uid") not in ("${datasource}", "$datasource", "prometheus"):
                fail("%s: panel '%s' uses datasource %r, not $datasource" % (rel, p.get("title"), ds))
            for t in p.get("targets", []):
                if "instance" not in t.get("expr", "") and "instance" not in t.get("legendFormat", ""):
                    fail("%s: panel '%s' is not per server (no instance in query or legend)"
                         % (rel, p.get("title")))
        ok("%s: %d panels" % (rel, len(dash.get("panels", []))))


def check_contract(root):
    used = used_metrics(root)
    for name, where in sorted(used.items()):
        fam = family_of(name, CONTRACT)
        if fam is None:
            fail("metric %s (used by %s) is not in the server's metrics contract"
                 % (name, ", ".join(sorted(set(where)))))
        elif CONTRACT[fam] == "histogram" and name == fam:
            fail("metric %s (used by %s) is a histogram: use %s_bucket/_sum/_count"
                 % (name, ", ".join(sorted(set(where))), name))
    ok("dashboard and rules use %d metric names, all in the contract" % len(used))


def dockerfile_stages(text):
    """[(from-line, [instructions])] with continuation lines joined."""
    lines, cur = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if cur and line.lstrip().startswith("#"):
            continue  # comment inside a continued instruction
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        lines.append((cur + line).strip())
        cur = ""
    stages = []
    for ins in lines:
        if re.match(r"(?i)FROM\s", ins):
            stages.append((ins, []))
        elif stages:
            stages[-1][1].append(ins)
    return stages


def apt_packages(instructions):
    pkgs = []
    for ins in instructions:
        if not re.match(r"(?i)RUN\s", ins):
            continue
        for cmd in re.split(r"&&|;|\|\|", ins[3:]):
            words = shlex.split(cmd)
            if "apt-get" in words and "install" in words:
                rest = words[words.index("install") + 1:]
                pkgs += [w for w in rest if not w.startswith("-")]
    return pkgs


def check_dockerfile(root, build_dir):
    n0 = len(failures)
    path = os.path.join(root, "Dockerfile")
    with open(path) as f:
        stages = dockerfile_stages(f.read())
    if len(stages) < 2:
        fail("Dockerfile: expected a build stage and a runtime stage, found %d stage(s)" % len(stages))
        return
    build_from, build = stages[0]
    if not re.match(r"(?i)FROM\s+debian:(12|bookworm)\s+AS\s+\w+", build_from):
        fail("Dockerfile: build stage must start FROM debian:12 AS <name>, got %r" % build_from)
    runs = [i for i in build if re.match(r"(?i)RUN\s", i)]
    if not any(re.fullmatch(r"RUN\s+scripts/install-deps(\s+&&.*)?", r) for r in runs):
        fail("Dockerfile: the build stage does not RUN scripts/install-deps without groups "
             "(the base packages CI installs)")
    if not any(re.search(r"cmake\s+--build\s.*--target\s+knnmem-server\s+knnmem\s*$", r) for r in runs):
        fail("Dockerfile: the build stage does not build just `--target knnmem-server knnmem`")
    if any(re.search(r"\bmake\b", r) for r in runs):
        fail("Dockerfile: the build stage runs make (it builds the tests, bench and model)")
    run_from, runtime = stages[-1]
    if not re.match(r"(?i)FROM\s+debian:(12|bookworm)-slim\b", run_from):
        fail("Dockerfile: runtime stage must be FROM debian:12-slim, got %r" % run_from)
    text = "\n".join(runtime)
    for want, why in [(r"(?m)^USER\s+(knnmem|10001)\b", "USER knnmem"),
                      (r'(?m)^ENTRYPOINT\s+\["knnmem-server"\]', 'ENTRYPOINT ["knnmem-server"]'),
                      (r"(?m)^HEALTHCHECK\s.*\bknnmem\b.*\bhealth\b", "HEALTHCHECK ... knnmem ... health"),
                      (r"(?m)^VOLUME\s+\[?\"?/data", "VOLUME /data"),
                      (r"(?m)^EXPOSE\s+50051\s+9464", "EXPOSE 50051 9464"),
                      (r"--no-install-recommends", "apt-get install --no-install-recommends")]:
        if not re.search(want, text):
            fail("Dockerfile: runtime stage lacks %s" % why)
    cmd = [i for i in runtime if i.startswith("CMD")]
    if not cmd or json.loads(cmd[-1][3:].strip()) != SERVER_ARGS:
        fail("Dockerfile: CMD must be %s" % json.dumps(SERVER_ARGS))
    pkgs = set(apt_packages(runtime))
    if len(failures) > n0:
        return
    ok("Dockerfile: build stage runs scripts/install-deps and builds knnmem-server and knnmem; "
       "runtime installs %d packages"
       % len(pkgs))
    check_runtime_libraries(root, build_dir, pkgs)


def check_runtime_libraries(root, build_dir, pkgs):
    """Every shared library of the built binaries comes from a package the image installs."""
    bins = [os.path.join(build_dir, "server/knnmem-server"), os.path.join(build_dir, "client/knnmem")]
    bins = [b for b in bins if os.access(b, os.X_OK)]
    if not bins:
        print("skip: no built binaries under %s; runtime package list not checked against ldd" % build_dir)
        return
    implicit = {"libc6"}  # part of every Debian image
    needed = {}
    for b in bins:
        out = subprocess.run(["ldd", b], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if "not found" in line:
                fail("%s: %s" % (b, line.strip()))
                continue
            m = re.search(r"=>\s+(/\S+)", line)
            if not m:
                continue
            lib = m.group(1)
            cands = [lib, os.path.realpath(lib)]
            if lib.startswith("/lib/"):
                cands.append("/usr" + lib)
            if lib.startswith("/usr/lib/"):
                cands.append(lib[4:])
            pkg = None
            for c in cands:
                r = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
                if r.returncode == 0:
                    pkg = r.stdout.split(":")[0].split(",")[0].strip()
                    break
            if pkg is None:
                fail("%s: no Debian package owns %s" % (os.path.basename(b), lib))
                continue
            needed.setdefault(pkg, set()).add(os.path.basename(lib))
    missing = sorted(set(needed) - pkgs - implicit)
    for p in missing:
        fail("Dockerfile: runtime stage does not install %s (provides %s)" % (p, ", ".join(sorted(needed[p]))))
    if not missing:
        ok("Dockerfile: runtime packages cover the %d packages that %s link (ldd + dpkg -S)"
           % (len(needed), " and ".join(os.path.relpath(b, root) for b in bins)))


def check_compose_and_k8s(root):
    n0 = len(failures)
    with open(os.path.join(root, "deploy/compose.yaml")) as f:
        compose = yaml.safe_load(f)
    services = compose.get("services", {})
    shards = sorted(s for s in services if re.fullmatch(r"knnmem-\d+", s))
    if shards != ["knnmem-0", "knnmem-1", "knnmem-2"]:
        fail("compose.yaml: expected services knnmem-0..2, found %s" % shards)
    for i, s in enumerate(shards):
        svc = services[s]
        if svc.get("command") != SERVER_ARGS:
            fail("compose.yaml: %s command %s != %s" % (s, svc.get("command"), SERVER_ARGS))
        if "build" not in svc:
            fail("compose.yaml: %s is not built from the repository's Dockerfile" % s)
        ports = [str(p) for p in svc.get("ports", [])]
        for want in ("127.0.0.1:%d:50051" % (50051 + i), "127.0.0.1:%d:9464" % (9464 + i)):
            if want not in ports:
                fail("compose.yaml: %s does not publish %s (loopback only)" % (s, want))
        if svc.get("secrets") != ["knnmem-tokens"]:
            fail("compose.yaml: %s secrets %s, want [knnmem-tokens] (read at %s)"
                 % (s, svc.get("secrets"), TOKENS))
        vols = [str(v) for v in svc.get("volumes", [])]
        if not any(v.endswith(":/data") and not v.startswith((".", "/")) for v in vols):
            fail("compose.yaml: %s has no named volume for /data" % s)
    for s in ("prometheus", "grafana"):
        if s not in services:
            fail("compose.yaml: no %s service" % s)
            continue
        for p in services[s].get("ports", []):
            if not str(p).startswith("127.0.0.1:"):
                fail("compose.yaml: %s publishes %s beyond loopback" % (s, p))
    if "file" not in (compose.get("secrets", {}).get("knnmem-tokens") or {}):
        fail("compose.yaml: no top-level secret knnmem-tokens with a file")
    grafana_env = (services.get("grafana") or {}).get("environment", {})
    if str(grafana_env.get("GF_AUTH_ANONYMOUS_ENABLED")).lower() != "false" or \
            ":?" not in str(grafana_env.get("GF_SECURITY_ADMIN_PASSWORD")):
        fail("compose.yaml: Grafana must have anonymous access off and a required admin password")
    for dirpath, _, files in os.walk(os.path.join(root, "deploy")):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, errors="replace") as f:
                for n, line in enumerate(f, 1):
                    if "--insecure" in line.split("#")[0]:
                        fail("%s:%d: --insecure outside a comment" % (os.path.relpath(path, root), n))

    with open(os.path.join(root, "deploy/prometheus/prometheus.yml")) as f:
        prom = yaml.safe_load(f)
    jobs = {j["job_name"]: j for j in prom.get("scrape_configs", [])}
    if "knnmem" not in jobs:
        fail("prometheus.yml: no job 'knnmem'")
    else:
        targets = sorted(t for sc in jobs["knnmem"].get("static_configs", []) for t in sc["targets"])
        if targets != ["%s:9464" % s for s in shards]:
            fail("prometheus.yml: knnmem targets %s do not match the compose shards" % targets)

    k8s = os.path.join(root, "deploy/k8s")
    with open(os.path.join(k8s, "kustomization.yaml")) as f:
        kust = yaml.safe_load(f)
    for r in kust.get("resources", []):
        if not os.path.exists(os.path.join(k8s, r)):
            fail("kustomization.yaml: resource %s does not exist" % r)
    kinds = {}
    for r in kust.get("resources", []):
        with open(os.path.join(k8s, r)) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    kinds[doc["kind"]] = doc
    for k in ("StatefulSet", "Service", "PodDisruptionBudget", "ServiceMonitor"):
        if k not in kinds:
            fail("deploy/k8s: no %s in kustomization resources" % k)
    if len(failures) > n0:
        return
    sts = kinds["StatefulSet"]
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    if c.get("args") != SERVER_ARGS:
        fail("statefulset.yaml: args %s != %s" % (c.get("args"), SERVER_ARGS))
    if spec.get("serviceName") != kinds["Service"]["metadata"]["name"]:
        fail("statefulset.yaml: serviceName does not name the headless Service")
    if kinds["Service"]["spec"].get("clusterIP") != "None":
        fail("service.yaml: the Service must be headless (clusterIP: None)")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if ports != {"grpc": 50051, "metrics": 9464}:
        fail("statefulset.yaml: container ports %s" % ports)
    for probe in ("readinessProbe", "livenessProbe"):
        if (c.get(probe) or {}).get("grpc", {}).get("port") != 50051:
            fail("statefulset.yaml: %s is not a grpc probe on 50051" % probe)
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    token_sources = [
        (src["secret"]["name"], item["path"])
        for name, path in mounts.items() if path == os.path.dirname(TOKENS)
        for src in (vols.get(name, {}).get("projected") or {}).get("sources", [])
        if "secret" in src and not src["secret"].get("optional")
        for item in src["secret"].get("items", [])]
    if ("knnmem-tokens", os.path.basename(TOKENS)) not in token_sources:
        fail("statefulset.yaml: the Secret knnmem-tokens is not mounted (not optional) at %s" % TOKENS)
    if pod.get("automountServiceAccountToken") is not False:
        fail("statefulset.yaml: automountServiceAccountToken must be false (its mount is under /run/secrets)")
    sc = pod.get("securityContext", {})
    if sc.get("runAsUser") != 10001 or sc.get("fsGroup") != 10001:
        fail("statefulset.yaml: pod must run as uid 10001 with fsGroup 10001")
    if not any(m["mountPath"] == "/data" for m in c.get("volumeMounts", [])) or \
            not spec.get("volumeClaimTemplates"):
        fail("statefulset.yaml: /data must come from a volumeClaimTemplate")
    pod_labels = spec["template"]["metadata"].get("labels", {})
    if any(pod_labels.get(a) != b for a, b in spec["selector"]["matchLabels"].items()):
        fail("statefulset.yaml: selector does not match the pod template labels")
    for k in ("Service", "PodDisruptionBudget", "ServiceMonitor"):
        doc = kinds[k]
        s = doc["spec"]["selector"]
        s = s.get("matchLabels", s) if k != "Service" else s
        target = pod_labels if k != "ServiceMonitor" else kinds["Service"]["metadata"].get("labels", {})
        if any(target.get(a) != b for a, b in s.items()):
            fail("%s selector %s does not select %s" % (k, s, "the Service" if k == "ServiceMonitor" else "the pods"))
    sm_ports = [e.get("port") for e in kinds["ServiceMonitor"]["spec"].get("endpoints", [])]
    if sm_ports != ["metrics"]:
        fail("servicemonitor.yaml: endpoints %s, want port metrics" % sm_ports)
    if len(failures) == n0:
        ok("compose.yaml, prometheus.yml and deploy/k8s agree on shards, ports, args and selectors")


def cmd_static(root, build_dir):
    check_dashboards(root)
    check_contract(root)
    check_dockerfile(root, build_dir)
    check_compose_and_k8s(root)
    finish()


# --------------------------------------------------------------------- scrape

def parse_exposition(text):
    """({family: type}, {sample names}) from the Prometheus text format."""
    types, samples = {}, set()
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("TYPE", "HELP"):
                t = parts[3].strip() if parts[1] == "TYPE" and len(parts) > 3 else None
                if t or parts[2] not in types:
                    types[parts[2]] = t or "untyped"
            continue
        m = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
        if m:
            samples.add(m.group(0))
    return types, samples


def exported(name, types, samples):
    if name in samples:
        return True
    fam = family_of(name, types)
    if fam is None:
        return False
    # A histogram's bare name is not a series; its _bucket/_sum/_count are.
    return not (fam == name and types.get(fam) == "histogram")


def cmd_metrics(root, url):
    if "://" not in url:
        url = "file://" + os.path.abspath(url)
    try:
        with urllib.request.urlopen(url, timeout=15) as r:
            text = r.read().decode("utf-8", "replace")
    except Exception as e:  # noqa: BLE001 - report any fetch error
        fail("cannot scrape %s: %s" % (url, e))
        finish()
    types, samples = parse_exposition(text)
    if not samples and not types:
        fail("%s returned no metrics" % url)
        finish()
    used = used_metrics(root)
    if not any(x.startswith("knnmem_tenant_usage") for x in samples):
        for n in TENANT_ONLY & set(used):
            ok("%s: not asked of a server without tenants" % n)
            del used[n]
    missing = sorted(n for n in used if not exported(n, types, samples))
    for n in missing:
        fail("metric %s is used by %s but %s does not export it"
             % (n, ", ".join(sorted(set(used[n]))), url))
    if not missing:
        ok("%s exports all %d metric names used by the dashboard and alert rules" % (url, len(used)))
    finish()


def cmd_names(root):
    for n in sorted(used_metrics(root)):
        print(n)
    finish()


def main(argv):
    if len(argv) >= 2 and argv[0] == "static":
        cmd_static(argv[1], argv[2] if len(argv) > 2 else os.path.join(argv[1], "build"))
    elif len(argv) == 3 and argv[0] == "metrics":
        cmd_metrics(argv[1], argv[2])
    elif len(argv) == 2 and argv[0] == "names":
        cmd_names(argv[1])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
