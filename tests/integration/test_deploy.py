"""deploy/: the container, compose, Kubernetes, systemd, Prometheus and
Grafana files (issue 7). Nothing here starts Docker or a cluster; the tests
check what can go stale without anyone noticing: every YAML parses, every
metric a dashboard or alert uses is one the worker exports (worker/metrics.c),
every path a Dockerfile or unit refers to exists, the configurations load,
and the timeouts leave the worker its drain."""
import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.lib.procs import REPO
from tests.lib.stack import Stack, bin_path, child_env, free_port, http_get, wait_until

TIMEOUT = 120
DEPLOY = REPO / "deploy"

# SPEC §11: the metrics every deployment may rely on.
SPEC_METRICS = {"promptyard_jobs_total", "promptyard_attempts_total", "promptyard_spend_usd_total",
                "promptyard_in_flight_jobs", "promptyard_provider_latency_seconds",
                "promptyard_budget_remaining_usd", "promptyard_circuit_open"}


def exported_metrics():
    """{name: type} from worker/metrics.c's table."""
    src = (REPO / "worker" / "metrics.c").read_text()
    found = dict(re.findall(r'\{\s*"(promptyard_[a-z_]+)",\s*TYPE_([A-Z]+)', src))
    assert found, "no metric table found in worker/metrics.c"
    return {k: v.lower() for k, v in found.items()}


def used_metrics(text, exported):
    """promptyard_* names in PromQL text, histogram suffixes mapped to the family."""
    out = set()
    for name in re.findall(r"promptyard_[a-z_]+", text):
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and exported.get(base) == "histogram":
                name = base
                break
        out.add(name)
    return out


def yaml_files():
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml"))


def test_every_yaml_parses():
    files = yaml_files()
    assert len(files) >= 10, files
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs, f"{path}: empty"
        if "k8s" in path.parts:
            for d in docs:
                assert d.get("apiVersion") and d.get("kind"), f"{path}: not a Kubernetes object"
                assert d.get("metadata", {}).get("name") or d["kind"] == "Kustomization", path


def test_kubernetes_manifests():
    k8s = DEPLOY / "k8s"
    kust = yaml.safe_load((k8s / "kustomization.yaml").read_text())
    for res in kust["resources"]:
        assert (k8s / res).exists(), res
    objs = {}
    for res in kust["resources"]:
        for d in yaml.safe_load_all((k8s / res).read_text()):
            objs[d["kind"]] = d
    assert {"Deployment", "ConfigMap", "PodDisruptionBudget", "ScaledObject"} <= set(objs)
    dep = objs["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    port = next(p for p in c["ports"] if p["name"] == "metrics")["containerPort"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["envFrom"][0]["secretRef"]["name"] == "promptyard-api-keys"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    secret = yaml.safe_load((k8s / "secret.example.yaml").read_text())
    assert secret["metadata"]["name"] == "promptyard-api-keys"
    # The ConfigMap's config: listens where the probes look, drains within the grace period.
    cfg = objs["ConfigMap"]["data"]["promptyard.cfg"]
    assert f'metrics_listen = "0.0.0.0:{port}"' in cfg
    drain_ms = int(re.search(r"drain_timeout_ms\s*=\s*(\d+)", cfg).group(1))
    assert pod["terminationGracePeriodSeconds"] * 1000 > drain_ms + 5000
    mount = c["volumeMounts"][0]["mountPath"]
    assert c["args"] == ["-c", f"{mount}/promptyard.cfg"]
    # PDB and KEDA point at the workers, KEDA at the config's group and topic.
    sel = dep["spec"]["selector"]["matchLabels"]
    assert objs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == sel
    so = objs["ScaledObject"]
    assert so["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    trig = so["spec"]["triggers"][0]
    assert trig["type"] == "kafka"
    assert f'group = "{trig["metadata"]["consumerGroup"]}"' in cfg
    assert f'input_topics = ["{trig["metadata"]["topic"]}"]' in cfg
    assert trig["metadata"]["bootstrapServers"] in cfg
    if shutil.which("kubectl"):
        r = subprocess.run(["kubectl", "kustomize", str(k8s)], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr


def test_dashboard_and_alerts_use_exported_metrics():
    exported = exported_metrics()
    assert SPEC_METRICS <= set(exported), SPEC_METRICS - set(exported)
    assert exported["promptyard_provider_latency_seconds"] == "histogram"
    dash_path = DEPLOY / "grafana" / "dashboards" / "promptyard.json"
    dash = json.loads(dash_path.read_text())
    exprs = []
    ids = set()
    for p in dash["panels"]:
        assert p["id"] not in ids, f"duplicate panel id {p['id']}"
        ids.add(p["id"])
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]), p["title"]
        for t in p.get("targets", []):
            exprs.append(t["expr"])
    assert len(exprs) >= 15
    used = used_metrics("\n".join(exprs), exported)
    assert used <= set(exported), f"dashboard uses unknown metrics: {used - set(exported)}"
    assert SPEC_METRICS <= used, f"dashboard misses {SPEC_METRICS - used}"
    # Variables used in queries are defined.
    defined = {v["name"] for v in dash["templating"]["list"]}
    for e in exprs:
        for var in re.findall(r"\$([a-z_]+)", e):
            assert var in defined or var.startswith("__"), f"undefined variable ${var} in {e}"
    alerts = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    used = used_metrics(alerts, exported)
    assert used and used <= set(exported), used - set(exported)
    for group in yaml.safe_load(alerts)["groups"]:
        for rule in group["rules"]:
            assert rule["alert"] and rule["expr"], rule


def test_dashboard_metrics_in_a_real_scrape():
    """A worker's /metrics, parsed by the Prometheus client's own parser,
    has a family for every metric the dashboard and the alerts use."""
    exported = exported_metrics()
    with Stack() as s:
        s.worker()
        url = s.metrics_url
        s.produce_jobs([json.dumps({"id": f"m{i}", "prompt": "hi"}) for i in range(3)])
        assert len(s.results(3, timeout_s=60)) == 3
        status, body = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(
            http_get(url + "/metrics", timeout=5)), 30, what="/metrics")
        text = body.decode()
        assert http_get(url + "/healthz")[0] == 200
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:  # python3-prometheus-client absent: the TYPE lines will do
        families = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    else:
        families = {}
        for f in text_string_to_metric_families(text):
            # The client strips _total from counter family names.
            name = f.name + "_total" if f.type == "counter" else f.name
            families[name] = f.type
    assert SPEC_METRICS <= set(families), SPEC_METRICS - set(families)
    for name, typ in exported.items():
        assert families.get(name) == typ, (name, families.get(name), typ)
    dash = (DEPLOY / "grafana" / "dashboards" / "promptyard.json").read_text()
    alerts = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    used = used_metrics(dash + alerts, exported)
    assert used <= set(families), used - set(families)
    assert re.search(r'^promptyard_jobs_total\{status="ok",code=""\} 3$', text, re.M), text[:2000]


def dockerfile_copies(text):
    """(sources, dest) of every COPY without --from, continuation lines joined."""
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] != "COPY" or any(p.startswith("--from") for p in parts):
            continue
        args = [p for p in parts[1:] if not p.startswith("--")]
        out.append((args[:-1], args[-1]))
    return out


def test_dockerfile_references_exist():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM debian:\$\{DEBIAN\} AS build", text, re.M)
    assert "ARG DEBIAN=bookworm-slim" in text
    assert len(re.findall(r"^FROM ", text, re.M)) == 2, "multi-stage"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for sources, _ in dockerfile_copies(text):
        for src in sources:
            assert (REPO / src).exists(), f"COPY {src}: not in the repository"
            assert f"!{src}" in ignore, f"{src} is excluded by Dockerfile.dockerignore"
    # What the build stage makes is what the runtime stage copies and runs.
    targets = re.search(r"make .*?DEPS_OK=yes (.*?)\s*(\\|&&|$)", text, re.M).group(1).split()
    makefile = (REPO / "Makefile").read_text()
    for t in targets:
        assert t.startswith("bin/") and f"$(BINDIR)/{t[4:]}:" in makefile, t
    entry = json.loads(re.search(r"^ENTRYPOINT (.*)$", text, re.M).group(1))
    assert Path(entry[0]).name in [Path(t).name for t in targets]
    cmd = json.loads(re.search(r"^CMD (.*)$", text, re.M).group(1))
    assert cmd[0] == "-c" and any(dest == cmd[1] for _, dest in dockerfile_copies(text))
    assert re.search(r"^USER \d+:\d+$", text, re.M), "runs as a numeric non-root user"
    # The runtime packages are bookworm's (when this machine has apt's lists).
    runtime = text.split("\nFROM debian:${DEBIAN}\n", 1)[1]
    pkgs = re.search(r"install -y --no-install-recommends(.*?)&&", re.sub(r"\\\n", " ", runtime),
                     re.S).group(1).split()
    assert "libmicrohttpd12" in pkgs and "librdkafka1" in pkgs
    if shutil.which("apt-cache"):
        for p in pkgs:
            r = subprocess.run(["apt-cache", "show", p], capture_output=True, timeout=30)
            assert r.returncode == 0, f"no Debian package {p}"


def unit_settings(text):
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_systemd_unit(tmpdir):
    path = DEPLOY / "systemd" / "promptyard-worker.service"
    text = path.read_text()
    s = unit_settings(text)
    want = {"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
            "KillSignal": "SIGTERM", "Restart": "on-failure", "PrivateTmp": "yes",
            "ProtectHome": "yes", "RestartPreventExitStatus": "2"}
    for k, v in want.items():
        assert s.get(k) == [v], f"{k}={s.get(k)}"
    # TimeoutStopSec above the drain timeout of the config it runs.
    exec_start = s["ExecStart"][0].split()
    assert exec_start[1:3] == ["-c", "/etc/promptyard/promptyard.cfg"]
    example = (DEPLOY / "promptyard.cfg.example").read_text()
    drain_ms = int(re.search(r"drain_timeout_ms\s*=\s*(\d+)", example).group(1))
    stop_s = int(s["TimeoutStopSec"][0].rstrip("s"))
    assert stop_s * 1000 > drain_ms + 5000, (stop_s, drain_ms)
    # The binary is one `make install` puts in /usr/local/bin.
    install = re.search(r"^install:.*?(?=^\S)", (REPO / "Makefile").read_text(), re.M | re.S).group(0)
    assert exec_start[0].startswith("/usr/local/bin/")
    assert f"bin/{Path(exec_start[0]).name}" in install and "/usr/local/bin" in install
    if shutil.which("systemd-analyze"):
        # Same unit, with the binary this tree built, through systemd's own checker.
        local = Path(tmpdir) / "promptyard-worker.service"
        local.write_text(text.replace(exec_start[0], bin_path("promptyard-worker")))
        r = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True,
                           text=True, timeout=60)
        problems = [line for line in (r.stdout + r.stderr).splitlines()
                    if "promptyard-worker.service" in line]
        assert not problems, problems


def test_compose_file():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    svc = compose["services"]
    assert {"kafka", "redis", "worker-1", "worker-2", "prometheus", "grafana"} <= set(svc)
    env = svc["kafka"]["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"], "KRaft, no ZooKeeper"
    assert "zookeeper" not in svc
    for name, s in svc.items():
        for vol in s.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (DEPLOY / src).exists(), f"{name}: {src} missing"
        build = s.get("build")
        if build:
            ctx = (DEPLOY / build["context"]).resolve()
            assert (ctx / build["dockerfile"]).exists()
    cfg = (DEPLOY / "compose" / "promptyard.cfg").read_text()
    port = re.search(r'metrics_listen = "0\.0\.0\.0:(\d+)"', cfg).group(1)
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"worker-1:{port}", f"worker-2:{port}"]
    drain_ms = int(re.search(r"drain_timeout_ms\s*=\s*(\d+)", cfg).group(1))
    grace = int(svc["worker-1"]["stop_grace_period"].rstrip("s"))
    assert grace * 1000 > drain_ms
    assert svc["worker-1"]["stop_signal"] == "SIGTERM"
    prov = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "promptyard.yml").read_text())
    mount = [v for v in svc["grafana"]["volumes"] if "dashboards" in v and "provisioning" not in v][0]
    assert prov["providers"][0]["options"]["path"] == mount.split(":")[1]


def test_deploy_configs_load_and_route_the_samples(tmpdir):
    """compose's and the ConfigMap's configs load (with the catalog they
    include) and route every sample job: estimate exits 0 only then."""
    tmp = Path(tmpdir)
    (tmp / "compose").mkdir()
    shutil.copy(DEPLOY / "compose" / "promptyard.cfg", tmp / "compose" / "promptyard.cfg")
    shutil.copy(DEPLOY / "models.cfg", tmp / "compose" / "models.cfg")  # side by side, as mounted
    cm = yaml.safe_load((DEPLOY / "k8s" / "configmap.yaml").read_text())
    (tmp / "k8s.cfg").write_text(cm["data"]["promptyard.cfg"])
    samples = DEPLOY / "samples" / "jobs.jsonl"
    dead = f"127.0.0.1:{free_port()}"
    for cfg in (tmp / "compose" / "promptyard.cfg", tmp / "k8s.cfg"):
        r = subprocess.run([bin_path("promptyard"), "estimate", "-c", str(cfg), "--redis", dead,
                            "--json", str(samples)], capture_output=True, text=True, timeout=60,
                           env=child_env())
        assert r.returncode == 0, f"{cfg}: {r.stderr}"
        doc = json.loads(r.stdout)
        assert doc["jobs"] >= 200 and doc["routed"] == doc["jobs"], (cfg, doc["unroutable"])


def test_samples():
    lines = (DEPLOY / "samples" / "jobs.jsonl").read_text().splitlines()
    jobs = [json.loads(x) for x in lines]
    assert len(jobs) >= 200
    assert len({j["id"] for j in jobs}) == len(jobs)
    tasks = {j["metadata"]["task"] for j in jobs}
    assert tasks == {"summarize", "extract", "classify", "code_review", "document"}
    sizes = sorted(len(x) for x in lines)
    assert sizes[0] < 500 and sizes[-1] > 5000, "varied lengths"
    assert all("model" not in j and "budget" not in j for j in jobs), "config-independent"
    # What is checked in is what the generator writes (no hand edits drift
    # from it): the jobs, the documents and the schemas, byte for byte.
    gen = DEPLOY / "samples" / "generate.py"
    out = Path(subprocess.run(["mktemp", "-d"], capture_output=True, text=True).stdout.strip())
    try:
        subprocess.run(["/usr/bin/python3", str(gen), str(out)], check=True, capture_output=True,
                       timeout=120)
        assert (out / "jobs.jsonl").read_text() == "\n".join(lines) + "\n"
        made = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        assert made == ["files/form.pdf", "files/invoice.pdf", "files/receipt-taxi.jpg",
                        "files/receipt.png", "jobs.jsonl", "schemas/form.json",
                        "schemas/invoice.json", "schemas/receipt.json"], made
        for rel in made:
            assert (out / rel).read_bytes() == (DEPLOY / "samples" / rel).read_bytes(), rel
    finally:
        shutil.rmtree(out)


# ---------------------------------------------------------------- sample documents

SUBSET = {"type", "properties", "required", "additionalProperties", "items", "enum"}


def schema_objects(schema):
    """Every subschema of schema that is an object."""
    yield schema
    for sub in schema.get("properties", {}).values():
        yield from schema_objects(sub)
    if isinstance(schema.get("items"), dict):
        yield from schema_objects(schema["items"])


def decoded_in_chromium(images, tmpdir):
    """{name: (width, height, gray bytes)} of images ({name: (media type,
    bytes)}) as Chromium decodes them (the red channel of a canvas)."""
    loads = ",".join(f"['{name}', 'data:{media};base64,{base64.b64encode(data).decode()}']"
                     for name, (media, data) in images.items())
    page = Path(tmpdir) / "images.html"
    page.write_text("""<!doctype html><body><script>
function gray(img) {
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const x = c.getContext('2d');
  x.drawImage(img, 0, 0);
  const d = x.getImageData(0, 0, c.width, c.height).data;
  let s = '';
  for (let i = 0; i < d.length; i += 4) s += String.fromCharCode(d[i]);
  return btoa(s);
}
for (const [name, src] of [%s]) {
  const img = new Image(), out = document.createElement('pre');
  out.id = name; out.textContent = 'pending';
  document.body.appendChild(out);
  img.onload = () => { out.textContent = img.naturalWidth + ' ' + img.naturalHeight + ' ' + gray(img); };
  img.onerror = () => { out.textContent = 'error'; };
  img.src = src;
}
</script></body>""" % loads)
    from tests.lib.browser import chromium
    dom, _ = chromium(page.as_uri(), tmpdir)
    out = {}
    for name in images:
        m = re.search(r'<pre id="%s">([^<]*)</pre>' % re.escape(name), dom)
        assert m and m.group(1) not in ("pending", "error"), (name, m and m.group(1))
        w, h, data = m.group(1).split(" ")
        out[name] = (int(w), int(h), base64.b64decode(data))
    return out


def test_sample_documents(tmpdir):
    """The document jobs' files are what they claim (Chromium decodes the
    PNG to exactly the pixels drawn and the JPEG to within JPEG's loss; the
    PDFs have their pages and a correct xref table), the schemas keep to
    the keywords every provider's structured output takes, and the jobs
    carry those files and schemas."""
    import sys
    sys.path.insert(0, str(DEPLOY / "samples"))
    sys.dont_write_bytecode = True
    import documents
    import jsonschema
    samples = DEPLOY / "samples"

    # Schemas: valid, within the subset, strict (everything required).
    for name in ("invoice", "receipt", "form"):
        schema = json.loads((samples / "schemas" / f"{name}.json").read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        for o in schema_objects(schema):
            assert set(o) <= SUBSET, (name, set(o) - SUBSET)
            if o.get("type") == "object":
                assert o["required"] == list(o["properties"]), name
                assert o["additionalProperties"] is False, name

    # PDFs: pages counted as the worker counts them; each xref entry points at its object.
    for name, pages in (("invoice.pdf", 2), ("form.pdf", 1)):
        pdf = (samples / "files" / name).read_bytes()
        assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
        assert len(re.findall(rb"/Type\s*/Page(?![A-Za-z0-9])", pdf)) == pages, name
        xref = int(pdf[pdf.rindex(b"startxref") + 9:].split()[0])
        assert pdf[xref:].startswith(b"xref\n0 ")
        count = int(pdf[xref:].split(b"\n")[1].split()[1])
        for k in range(1, count):
            off = int(pdf[xref:].split(b"\n")[2 + k].split()[0])
            assert pdf[off:].startswith(b"%d 0 obj" % k), (name, k, off)

    # Images: decoded by a real browser.
    png = (samples / "files" / "receipt.png").read_bytes()
    jpg = (samples / "files" / "receipt-taxi.jpg").read_bytes()
    got = decoded_in_chromium({"png": ("image/png", png), "jpg": ("image/jpeg", jpg)}, tmpdir)
    receipt = documents.Canvas(392, 24 + 18 * len(documents.RECEIPT) + 16)
    receipt.lines(16, 16, documents.RECEIPT)
    assert got["png"] == (receipt.w, receipt.h, bytes(receipt.px))
    taxi = documents.taxi_canvas()
    w, h, gray = got["jpg"]
    assert (w, h) == (taxi.w, taxi.h)
    diff = sum(abs(a - b) for a, b in zip(gray, taxi.px)) / len(gray)
    assert diff < 3, diff  # JPEG's loss at quality 80; a broken encoder is far off
    assert sum(gray) / len(gray) < 250, "ink on the page"

    # The document jobs carry these files and schemas.
    jobs = [json.loads(x) for x in (samples / "jobs.jsonl").read_text().splitlines()]
    docs = [j for j in jobs if j["metadata"]["task"] == "document"]
    files = {n: (samples / "files" / n).read_bytes() for n in documents.files()}
    carried = set()
    for j in docs:
        for m in j["messages"]:
            for p in m["content"] if isinstance(m["content"], list) else []:
                data = (p.get("data") or p.get("image_url", {}).get("url", "")
                        or p.get("file", {}).get("file_data", ""))
                if data:
                    data = base64.b64decode(data.split(",", 1)[-1])
                    carried |= {n for n, b in files.items() if b == data}
                    assert data in files.values(), j["id"]
        rf = j.get("response_format")
        if rf and rf["json_schema"]["name"] in documents.SCHEMAS:
            assert rf["json_schema"]["schema"] == json.loads(
                (samples / "schemas" / (rf["json_schema"]["name"] + ".json")).read_text())
    assert carried == set(files), carried
    assert sum(1 for j in docs if j.get("tools")) >= 3
    assert any(j.get("reasoning_effort") for j in docs)
    assert {j["metadata"]["document"] for j in docs} == {"invoice", "receipt", "form"}
