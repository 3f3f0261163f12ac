"""Checks of the built image for tests/deploy/test-image.sh.

Run with Debian's /usr/bin/python3 (python3-numpy, python3-yaml:
`scripts/install-deps image-test`). Each subcommand prints "ok:" lines and
exits 1 with FAIL lines on stderr when a check fails.

  search ROWS SEED QUERIES QSEED K HEADS KEY_DIM JSON
      the CLI's `--json search` output (file JSON) equals brute force over the
      rows `append --random ROWS --seed SEED` stored (client/random_rows.h)
  metrics URL NAME=VALUE...
      the scrape at URL has each sample NAME (labels summed) equal to VALUE
  config INSPECT_JSON ROOT K8S_YAML BUDGET_MB
      the image's config (`image inspect` output) is what deploy/ expects:
      user 10001, ports, /data, HEALTHCHECK, a CMD with tokens and without
      --insecure, equal to compose's command and the rendered StatefulSet's
      args, whose ports, probes, user, volume and secret mount match it; and
      the image size is under BUDGET_MB
  pod K8S_YAML TOKENS_DIR GRPC_PORT METRICS_PORT POD VOLUME OUT
      the StatefulSet's pod (rendered) as the Pod POD for `podman play kube`:
      the same container, args and securityContext, with the claim as the
      named volume VOLUME, the Secret as a hostPath and host ports on
      127.0.0.1
"""

import json
import os
import re
import sys
import urllib.request

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, file=sys.stderr)


def ok(msg):
    print("ok:   " + msg)


def finish():
    if failures:
        print("image_check: %d check(s) failed" % len(failures), file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


# ---------------------------------------------------------------- search

def splitmix_uniform(seed, count):
    """client/random_rows.h: SplitMix64 from `seed`, top 24 bits to [-1, 1)."""
    import numpy as np
    i = np.arange(1, count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(40)).astype(np.float64) / 16777216.0 * 2.0 - 1.0


def cmd_search(rows, seed, nq, qseed, k, heads, dk, path, tol=1e-3):
    import numpy as np
    with open(path) as f:
        got = json.load(f)
    if got.get("shape") != [nq, heads, k]:
        fail("search shape %s, want %s" % (got.get("shape"), [nq, heads, k]))
        finish()
    keys = splitmix_uniform(seed, rows * heads * dk).reshape(rows, heads, dk)
    queries = splitmix_uniform(qseed, nq * heads * dk).reshape(nq, heads, dk)
    positions = np.array(got["positions"], dtype=np.int64).reshape(nq, heads, k)
    scores = np.array(got["scores"], dtype=np.float64).reshape(nq, heads, k)
    for q in range(nq):
        for h in range(heads):
            truth = keys[:, h, :] @ queries[q, h]  # every row's score, float64
            want = np.sort(truth)[::-1][:k]
            p, s = positions[q, h], scores[q, h]
            where = "query %d head %d" % (q, h)
            if len(set(p.tolist())) != k or p.min() < 0 or p.max() >= rows:
                fail("%s: positions %s not %d distinct stored rows" % (where, p.tolist(), k))
            elif np.abs(s - want).max() > tol:
                fail("%s: scores %s, brute force %s" % (where, s[:4].tolist(), want[:4].tolist()))
            elif np.abs(s - truth[p]).max() > tol:
                fail("%s: a position's score is not its true score" % where)
    if not failures:
        ok("search of %d queries x %d heads, top %d of %d rows, equals brute force (tol %g)"
           % (nq, heads, k, rows, tol))
    finish()


# ---------------------------------------------------------------- metrics

def cmd_metrics(url, wants):
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    sums = {}
    for line in text.splitlines():
        m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m and not line.startswith("#"):
            sums[m.group(1)] = sums.get(m.group(1), 0.0) + float(m.group(3))
    for want in wants:
        name, value = want.split("=")
        if name not in sums:
            fail("%s: no sample %s" % (url, name))
        elif sums[name] != float(value):
            fail("%s: %s = %g, want %s" % (url, name, sums[name], value))
        else:
            ok("%s: %s = %s" % (url, name, value))
    finish()


# ---------------------------------------------------------------- config

def flag(args, name):
    """The value after `name` in an argument list, or None."""
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def load_k8s(path):
    import yaml
    with open(path) as f:
        return {d["kind"]: d for d in yaml.safe_load_all(f) if d}


def cmd_config(inspect_path, root, k8s_path, budget_mb):
    import yaml
    with open(inspect_path) as f:
        image = json.load(f)[0]
    cfg = image.get("Config") or {}
    size_mb = image["Size"] / 1e6
    print("image size: %.1f MB (budget %d MB)" % (size_mb, budget_mb))
    if size_mb > budget_mb:
        fail("image is %.1f MB, over its %d MB budget" % (size_mb, budget_mb))
    user = cfg.get("User", "")
    if user.split(":")[0] != "10001":
        fail("image USER %r, want 10001[:10001] (numeric, for runAsNonRoot)" % user)
    exposed = sorted(cfg.get("ExposedPorts") or {})
    if exposed != ["50051/tcp", "9464/tcp"]:
        fail("image exposes %s, want 50051/tcp and 9464/tcp" % exposed)
    volumes = sorted(cfg.get("Volumes") or {})
    if volumes != ["/data"]:
        fail("image volumes %s, want /data" % volumes)
    health = cfg.get("Healthcheck") or image.get("Healthcheck") or image.get("HealthCheck") or {}
    if "health" not in (health.get("Test") or []):
        fail("image has no HEALTHCHECK running `knnmem ... health` (OCI format drops it: "
             "build with --format docker): %s" % health)
    if cfg.get("Entrypoint") != ["knnmem-server"]:
        fail("image ENTRYPOINT %s" % cfg.get("Entrypoint"))
    cmd = cfg.get("Cmd") or []
    tokens = flag(cmd, "--auth-token-file")
    if "--insecure" in cmd or not tokens:
        fail("image CMD %s: want --auth-token-file and no --insecure" % cmd)
    listen, metrics = port_of(flag(cmd, "--listen")), port_of(flag(cmd, "--metrics-address"))
    if sorted(["%d/tcp" % listen, "%d/tcp" % metrics]) != exposed:
        fail("CMD serves %d and %d, image exposes %s" % (listen, metrics, exposed))
    if flag(cmd, "--data-dir") not in volumes:
        fail("CMD --data-dir %s is not the image's volume %s" % (flag(cmd, "--data-dir"), volumes))
    if failures:
        finish()
    ok("image: user %s, ports %s, volume %s, HEALTHCHECK, CMD reads %s" % (user, exposed, volumes, tokens))

    with open(os.path.join(root, "deploy/compose.yaml")) as f:
        compose = yaml.safe_load(f)
    for name, svc in sorted(compose["services"].items()):
        if not name.startswith("knnmem-"):
            continue
        if svc.get("command") != cmd:
            fail("compose %s command %s != image CMD %s" % (name, svc.get("command"), cmd))
        inner = sorted(int(str(p).rsplit(":", 1)[1]) for p in svc.get("ports", []))
        if inner != sorted([listen, metrics]):
            fail("compose %s publishes container ports %s, image serves %s" % (name, inner, [listen, metrics]))
        if not any(str(v).endswith(":" + volumes[0]) for v in svc.get("volumes", [])):
            fail("compose %s mounts no volume at %s" % (name, volumes[0]))
        if "/run/secrets/%s" % svc.get("secrets", ["?"])[0] != tokens:
            fail("compose %s secret %s is not mounted at %s" % (name, svc.get("secrets"), tokens))
    if not failures:
        ok("compose shards: command, ports, volume and secret match the image")

    kinds = load_k8s(k8s_path)
    pod = kinds["StatefulSet"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    if c.get("args") != cmd:
        fail("StatefulSet args %s != image CMD %s" % (c.get("args"), cmd))
    ports = sorted(p["containerPort"] for p in c.get("ports", []))
    if ports != sorted([listen, metrics]):
        fail("StatefulSet container ports %s, image serves %s" % (ports, [listen, metrics]))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if (c.get(probe) or {}).get("grpc", {}).get("port") != listen:
            fail("StatefulSet %s is not a gRPC probe on %d" % (probe, listen))
    sc = pod.get("securityContext", {})
    if [sc.get("runAsUser"), sc.get("runAsGroup"), sc.get("fsGroup")] != [10001] * 3 or \
            not sc.get("runAsNonRoot"):
        fail("StatefulSet securityContext %s, want runAsNonRoot and uid/gid/fsGroup 10001" % sc)
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    claims = [t["metadata"]["name"] for t in kinds["StatefulSet"]["spec"].get("volumeClaimTemplates", [])]
    if mounts.get(volumes[0]) not in claims:
        fail("StatefulSet mounts %s from %s, not a volumeClaimTemplate %s"
             % (volumes[0], mounts.get(volumes[0]), claims))
    if os.path.dirname(tokens) not in mounts:
        fail("StatefulSet mounts nothing at %s" % os.path.dirname(tokens))
    svc_ports = sorted(p["port"] for p in kinds["Service"]["spec"]["ports"])
    if svc_ports != sorted([listen, metrics]):
        fail("Service ports %s, image serves %s" % (svc_ports, [listen, metrics]))
    if not failures:
        ok("StatefulSet (%s): args, ports, gRPC probes, uid 10001, /data claim and secret mount match the image"
           % os.path.basename(k8s_path))
    finish()


# ---------------------------------------------------------------- pod

def cmd_pod(k8s_path, tokens_dir, grpc_port, metrics_port, pod_name, volume, out):
    import yaml
    sts = load_k8s(k8s_path)["StatefulSet"]
    spec = json.loads(json.dumps(sts["spec"]["template"]["spec"]))
    c = spec["containers"][0]
    c["image"] = os.environ.get("KNNMEM_IMAGE", "knnmem:local")
    c["imagePullPolicy"] = "Never"
    host = {"grpc": int(grpc_port), "metrics": int(metrics_port)}
    for p in c["ports"]:
        p["hostPort"] = host[p["name"]]
        p["hostIP"] = "127.0.0.1"
    volumes = []
    for v in spec.get("volumes", []):
        if "projected" in v:  # the Secret: the same file names from a host dir
            v = {"name": v["name"], "hostPath": {"path": tokens_dir, "type": "Directory"}}
        volumes.append(v)
    for t in sts["spec"].get("volumeClaimTemplates", []):
        volumes.append({"name": t["metadata"]["name"], "persistentVolumeClaim": {"claimName": volume}})
    spec["volumes"] = volumes
    spec.pop("affinity", None)
    spec["restartPolicy"] = "Never"
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": pod_name, "labels": sts["spec"]["template"]["metadata"]["labels"]},
           "spec": spec}
    with open(out, "w") as f:
        yaml.safe_dump(pod, f)
    ok("pod %s from the StatefulSet written to %s" % (pod_name, out))
    finish()


def main(argv):
    try:
        if argv[:1] == ["search"] and len(argv) == 9:
            cmd_search(*[int(a) for a in argv[1:8]], argv[8])
        elif argv[:1] == ["metrics"] and len(argv) >= 3:
            cmd_metrics(argv[1], argv[2:])
        elif argv[:1] == ["config"] and len(argv) == 5:
            cmd_config(argv[1], argv[2], argv[3], int(argv[4]))
        elif argv[:1] == ["pod"] and len(argv) == 8:
            cmd_pod(*argv[1:])
    except Exception as e:  # noqa: BLE001 - any error is a failed check
        fail("%s: %s: %s" % (argv[0], type(e).__name__, e))
        finish()
    print(__doc__, file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
