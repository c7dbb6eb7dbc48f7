"""The test stack: real redis-server, librdkafka's mock cluster, the fake LLM
provider and the worker, as Python objects that clean up after themselves.

    Redis(tmpdir=None, appendonly=False, password=None, username=None, extra_args=())
        .host .port .address .dir   .client(**kw) -> redis.Redis (bytes replies, as redis-py's default)
        (with username: that ACL user with password, and the default user off)
        .stop() (removes its dir)   .kill() (SIGKILL, keeps data)   .start()   .restart(kill=False)
    MockCluster(topics={name: partitions}, brokers=1)
        .bootstrap   .down(id) .up(id) .down_all() .up_all() .create_topic(name, n)   .stop()
    FakeProvider(rules=None, log_bodies=False)
        .port .url(prefix="")   .set_rules([...]) .stats() .requests(bodies=False, since=None)
        .reset() .release()   .stop()
    Worker(config_path, env=None, args=())
        .pid .log_path   .sigterm() .sigint() .sigkill() .wait(timeout) -> exit code
        .running()   .log_lines() -> [dict]   .log_text()   .wait_log(msg_or_pred, timeout)
    Stack(tmpdir=None, partitions=3, topics=None, providers=None, models=None, budgets=None,
          rules=None, fake_rules=None, config=None, brokers=1, tls=None, redis_username=None,
          redis_password=None, ...)                                   (a context manager)
        .cluster .redis .fake .tls .bootstrap .config (dict) .config_path .env .dir
        .write_config() .worker(**kw) .produce_jobs(jobs) .results(n) .costs(n) .dlq(n)
        .set_fake_rules(rules) .close()

Everything is registered with tests.lib.procs and killed at the end of the
test even when it fails. Stack(tls="h2") (or "h1") puts a real TLS server
(tests/lib/tls.py: nginx, a test CA) in front of the fake: the default
providers' base_urls are https:// on it, offering HTTP/2 ("h2") or only
HTTP/1.1 ("h1"), with the test CA as their ca_file. Programs come from $PROMPTYARD_BIN (default
<repo>/bin); sanitizer options get defaults (procs.SANITIZER_DEFAULTS).
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from . import procs
from .kafkautil import (Msg, committed_offsets, consume_all, consume_json, end_offsets,  # noqa: F401
                        produce)
from .libconfig import dumps as config_dumps, write_config  # noqa: F401
from .procs import (REPO, attach_log, bin_path, child_env, free_port, wait_until)  # noqa: F401
from .tls import TlsFront

START_TIMEOUT_S = 15


def http(method, url, body=None, timeout=10, headers=None):
    """(status, bytes) of one HTTP request; never raises on HTTP error statuses."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_get(url, timeout=10):
    return http("GET", url, timeout=timeout)


def _own_dir(prefix, parent):
    parent = parent or os.environ.get("PROMPTYARD_TMP") or None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=str(parent) if parent else None))


def _rmtree(path):
    if os.environ.get("PROMPTYARD_KEEP_TMP") != "1":
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- Redis

class Redis:
    """A redis-server on a free loopback port with its own temp dir."""

    def __init__(self, tmpdir=None, appendonly=False, password=None, port=None, extra_args=(),
                 username=None):
        import redis as _redis  # noqa: F401  (fail early if python3-redis is missing)
        self.host = "127.0.0.1"
        self.appendonly = appendonly
        self.password = password
        self.username = username
        self.extra_args = list(extra_args)
        self.dir = _own_dir("redis-", tmpdir)
        self.port = port
        self.proc = None
        self._fixed_port = port is not None
        procs.register(self)
        try:
            self.start()
        except BaseException:
            self._cleanup()
            raise

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def _argv(self):
        argv = ["redis-server", "--port", str(self.port), "--bind", self.host,
                "--dir", str(self.dir), "--save", "", "--daemonize", "no",
                "--logfile", str(self.dir / "redis.log"),
                "--appendonly", "yes" if self.appendonly else "no"]
        if self.appendonly:
            argv += ["--appendfsync", "always"]
        if self.username:
            argv += ["--user", self.username, "on", f">{self.password}", "~*", "&*", "+@all",
                     "--user", "default", "off"]
        elif self.password:
            argv += ["--requirepass", self.password]
        return argv + self.extra_args

    def start(self):
        """Starts redis-server (on the same port once it has one) and waits for PING."""
        if self.proc is not None and self.proc.running():
            raise RuntimeError("redis is already running")
        self.dir.mkdir(parents=True, exist_ok=True)  # stop() removed it: start afresh
        for attempt in range(3):
            if self.port is None:
                self.port = free_port()
            self.proc = procs.Proc(self._argv(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, register=False)
            try:
                self._wait_ping()
                return self
            except RuntimeError:
                self.proc.kill()
                if self._fixed_port or attempt == 2:
                    raise
                self.port = None  # the port was taken meanwhile: pick another

    def _wait_ping(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        last = None
        while time.monotonic() < deadline:
            if not self.proc.running():
                raise RuntimeError(f"redis-server exited ({self.proc.returncode}): "
                                   f"{procs.tail(self.dir / 'redis.log', 5)}")
            try:
                if self.client(socket_timeout=1).ping():
                    return
            except Exception as e:
                last = e
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer PING in {START_TIMEOUT_S} s: {last}")

    def client(self, **kw):
        """A redis-py client; replies are bytes unless decode_responses=True."""
        import redis
        kw.setdefault("socket_timeout", 10)
        return redis.Redis(host=self.host, port=self.port, username=self.username,
                           password=self.password, **kw)

    def running(self):
        return self.proc is not None and self.proc.running()

    def kill(self):
        """SIGKILL; the data dir stays (start() or restart() bring it back)."""
        if self.proc is not None:
            self.proc.kill()

    def _shutdown(self):
        if self.proc is not None and self.proc.running():
            self.proc.terminate(timeout=10)

    def restart(self, kill=False):
        """Stops (SIGTERM, or SIGKILL with kill=True) and starts again on the same
        port with the same dir. Returns self."""
        if kill:
            self.kill()
        else:
            self._shutdown()
        return self.start()

    def stop(self):
        """Stops redis-server and removes its temp dir."""
        self._shutdown()
        self.kill()
        _rmtree(self.dir)

    _cleanup = stop

    def __repr__(self):
        return f"Redis({self.address})"


# ---------------------------------------------------------------- MockCluster

class MockCluster:
    """bin/mockcluster: librdkafka's mock Kafka cluster in a child process."""

    def __init__(self, topics=None, brokers=1, tmpdir=None):
        self.brokers = brokers
        self.dir = _own_dir("mockcluster-", tmpdir)
        self.log_path = self.dir / "mockcluster.log"
        argv = [bin_path("mockcluster"), "--brokers", str(brokers)]
        for name, parts in (topics or {}).items():
            argv += ["--topic", f"{name}:{parts}"]
        self._log = open(self.log_path, "wb")
        procs.register(self)
        self.proc = procs.Proc(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=self._log, register=False)
        attach_log("mockcluster", self.log_path)
        try:
            line = procs.read_line(self.proc.popen.stdout, START_TIMEOUT_S, "mockcluster")
            if not line.startswith("bootstrap="):
                raise RuntimeError(f"mockcluster: unexpected first line {line!r}")
            self.bootstrap = line[len("bootstrap="):]
        except BaseException:
            self._cleanup()
            raise

    def command(self, line, timeout=10):
        """Sends one command; returns "ok" or raises RuntimeError with the error."""
        if not self.proc.running():
            raise RuntimeError("mockcluster is not running")
        self.proc.popen.stdin.write((line + "\n").encode())
        self.proc.popen.stdin.flush()
        answer = procs.read_line(self.proc.popen.stdout, timeout, f"mockcluster {line!r}")
        if answer != "ok":
            raise RuntimeError(f"mockcluster {line!r}: {answer}")
        return answer

    def down(self, broker_id):
        return self.command(f"down {broker_id}")

    def up(self, broker_id):
        return self.command(f"up {broker_id}")

    def down_all(self):
        return self.command("down-all")

    def up_all(self):
        return self.command("up-all")

    def create_topic(self, name, partitions):
        return self.command(f"topic {name} {partitions}")

    def stop(self, timeout=15):
        """Asks it to quit; kills it if it does not. Returns the exit code."""
        if self.proc.running():
            try:
                self.proc.popen.stdin.write(b"quit\n")
                self.proc.popen.stdin.flush()
                self.proc.popen.stdin.close()
            except OSError:
                pass
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.proc.kill()

    def _cleanup(self):
        try:
            self.stop(timeout=5)
        finally:
            self.proc._cleanup()
            self._log.close()
            _rmtree(self.dir)

    def __repr__(self):
        return f"MockCluster({getattr(self, 'bootstrap', '?')})"


# ---------------------------------------------------------------- FakeProvider

class FakeProvider:
    """bin/fake_provider: OpenAI, Anthropic and Gemini formats on one port."""

    def __init__(self, rules=None, tmpdir=None, log_bodies=False, port=0):
        self.dir = _own_dir("fake-provider-", tmpdir)
        self.log_path = self.dir / "fake_provider.log"
        argv = [bin_path("fake_provider"), "--port", str(port)]
        if rules is not None:
            rules_path = self.dir / "rules.json"
            rules_path.write_text(json.dumps(rules))
            argv += ["--rules", str(rules_path)]
        if log_bodies:
            argv.append("--log-bodies")
        self._log = open(self.log_path, "wb")
        procs.register(self)
        self.proc = procs.Proc(argv, stdout=subprocess.PIPE, stderr=self._log, register=False)
        attach_log("fake_provider", self.log_path)
        try:
            line = procs.read_line(self.proc.popen.stdout, START_TIMEOUT_S, "fake_provider")
            if not line.startswith("port="):
                raise RuntimeError(f"fake_provider: unexpected first line {line!r}")
            self.port = int(line[len("port="):])
        except BaseException:
            self._cleanup()
            raise

    def url(self, prefix=""):
        """A base_url for a provider instance, e.g. url("/a/v1")."""
        return f"http://127.0.0.1:{self.port}{prefix}"

    def _call(self, method, path, body=None):
        status, data = http(method, self.url(path), body=body)
        if status != 200:
            raise RuntimeError(f"fake_provider {method} {path}: {status} {data[:300]!r}")
        return json.loads(data)

    def set_rules(self, rules):
        """Replaces all rules (first match wins) and their counters."""
        return self._call("POST", "/_control/rules", rules)

    def reset(self):
        """Clears the request log, the stats and the rules' counters."""
        return self._call("POST", "/_control/reset", {})

    def release(self):
        """Closes every hanging request now."""
        return self._call("POST", "/_control/release", {})

    def stats(self):
        return self._call("GET", "/_stats")

    def requests(self, bodies=False, since=None):
        q = []
        if bodies:
            q.append("bodies=1")
        if since is not None:
            q.append(f"since={since}")
        return self._call("GET", "/_requests" + ("?" + "&".join(q) if q else ""))

    def stop(self, timeout=10):
        """SIGTERM (then SIGKILL). Returns the exit code."""
        return self.proc.terminate(timeout=timeout)

    def _cleanup(self):
        try:
            self.proc.terminate(timeout=5)
        finally:
            self.proc._cleanup()
            self._log.close()
            _rmtree(self.dir)

    def __repr__(self):
        return f"FakeProvider({self.url()})"


# ---------------------------------------------------------------- Worker

class Worker:
    """bin/promptyard-worker -c CONFIG; stderr (JSON log lines) to a file that is
    shown when the test fails."""

    _seq = 0

    def __init__(self, config_path, env=None, args=(), log_path=None, name="worker", program=None):
        Worker._seq += 1
        self.config_path = str(config_path)
        self.name = f"{name}-{Worker._seq}"
        base = Path(self.config_path).resolve().parent
        self.log_path = Path(log_path) if log_path else base / f"{self.name}.log"
        self.out_path = self.log_path.with_suffix(".out")
        self._log = open(self.log_path, "ab")
        self._out = open(self.out_path, "ab")
        argv = [program or bin_path("promptyard-worker"), "-c", self.config_path, *args]
        procs.register(self)
        self.proc = procs.Proc(argv, env=env, stdout=self._out, stderr=self._log, register=False)
        self.pid = self.proc.pid
        attach_log(self.name, self.log_path)

    def running(self):
        return self.proc.running()

    @property
    def returncode(self):
        return self.proc.returncode

    def sigterm(self):
        return self.proc.signal(signal.SIGTERM)

    def sigint(self):
        return self.proc.signal(signal.SIGINT)

    def sigkill(self):
        """Kills at once (the whole process group); returns the exit code."""
        return self.proc.kill()

    def wait(self, timeout=60):
        """The exit code; raises TimeoutError if still running after timeout s."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.name} still running after {timeout} s") from None

    def stop(self, timeout=60):
        """SIGTERM and wait for the drain; returns the exit code."""
        self.sigterm()
        return self.wait(timeout)

    def log_text(self):
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_lines(self):
        """The JSON objects logged so far; other lines (sanitizer reports) are skipped."""
        out = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def wait_log(self, match, timeout=30):
        """Waits for a log line: match is a msg string or a predicate on the dict.
        Returns that line's dict; raises TimeoutError (or RuntimeError if the
        worker exits first)."""
        pred = match if callable(match) else (lambda d: d.get("msg") == match)
        deadline = time.monotonic() + timeout
        while True:
            for d in self.log_lines():
                if pred(d):
                    return d
            if not self.running():
                for d in self.log_lines():  # the last lines before the exit
                    if pred(d):
                        return d
                raise RuntimeError(f"{self.name} exited ({self.returncode}) before log {match!r}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.name}: no log {match!r} within {timeout} s")
            time.sleep(0.05)

    def _cleanup(self):
        try:
            self.proc.kill()
        finally:
            self.proc._cleanup()
            self._log.close()
            self._out.close()

    def __repr__(self):
        return f"Worker({self.name}, pid={self.pid})"


# ---------------------------------------------------------------- Stack

REDIS_PASSWORD_ENV = "PROMPTYARD_TEST_REDIS_PASSWORD"
PROVIDER_PREFIX = {"openai": "/openai/v1", "anthropic": "/anthropic/v1", "gemini": "/gemini/v1beta"}
PROVIDER_KEYS = {"openai": ("FAKE_OPENAI_KEY", "sk-fake-openai"),
                 "anthropic": ("FAKE_ANTHROPIC_KEY", "sk-ant-fake"),
                 "gemini": ("FAKE_GEMINI_KEY", "fake-gemini-key")}

DEFAULT_MODELS = [
    {"name": "gpt-4o-mini", "provider": "openai", "id": "gpt-4o-mini",
     "input_usd_per_mtok": 0.15, "cached_input_usd_per_mtok": 0.075, "output_usd_per_mtok": 0.60,
     "context_tokens": 128000, "default_max_tokens": 256, "quality": 0.62, "latency_ms": 800,
     "capabilities": ["json", "tools", "vision"]},
    {"name": "claude-haiku", "provider": "anthropic", "id": "claude-3-5-haiku-latest",
     "input_usd_per_mtok": 0.80, "cached_input_usd_per_mtok": 0.08, "output_usd_per_mtok": 4.0,
     "context_tokens": 200000, "default_max_tokens": 256, "quality": 0.66, "latency_ms": 700,
     "capabilities": ["json", "tools", "vision", "long_context"]},
    {"name": "gemini-flash", "provider": "gemini", "id": "gemini-1.5-flash",
     "input_usd_per_mtok": 0.075, "cached_input_usd_per_mtok": 0.01875, "output_usd_per_mtok": 0.30,
     "context_tokens": 1000000, "default_max_tokens": 256, "quality": 0.58, "latency_ms": 600,
     "capabilities": ["json", "vision", "long_context"]},
]


def deep_merge(base, over):
    """base updated in place by over: dicts merge recursively, everything else
    (lists included) replaces; None values delete."""
    for k, v in over.items():
        if v is None:
            base.pop(k, None)
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


class Stack:
    """Mock cluster + Redis + fake provider, and a config for workers on them.

    Topics: jobs/results/costs/dlq ("llm.jobs", "llm.results", "llm.costs",
    "llm.dlq") with `partitions` each, plus `topics` {name: partitions}.
    Providers default to one of each type on the fake ("openai",
    "anthropic", "gemini", base_url fake.url(PROVIDER_PREFIX[type])), with
    keys in self.env checked by the fake; models default to DEFAULT_MODELS,
    budgets to one "default" of $100. `config` is deep-merged last into the
    config dict. Use as `with Stack() as s:`; everything it started is killed
    on exit, its dir (configs, worker logs) is removed after the test.
    """

    def __init__(self, tmpdir=None, partitions=3, topics=None, providers=None, models=None,
                 budgets=None, rules=None, fake_rules=None, config=None, brokers=1,
                 redis_appendonly=False, log_bodies=False, group=None, metrics=True, tls=None,
                 tls_log=True, redis_username=None, redis_password=None):
        self.tmp = procs.TempDir("stack-", parent=tmpdir)   # removed at test cleanup
        self.dir = self.tmp.path
        self.workers = []
        self.cluster = self.redis = self.fake = self.tls = None
        self.jobs_topic, self.results_topic = "llm.jobs", "llm.results"
        self.costs_topic, self.dlq_topic = "llm.costs", "llm.dlq"
        self.group = group or f"promptyard-{uuid.uuid4().hex[:8]}"
        procs.register(self)
        try:
            all_topics = {t: partitions for t in (self.jobs_topic, self.results_topic,
                                                  self.costs_topic, self.dlq_topic)}
            all_topics.update(topics or {})
            self.cluster = MockCluster(all_topics, brokers=brokers, tmpdir=self.dir)
            self.bootstrap = self.cluster.bootstrap
            self.redis = Redis(tmpdir=self.dir, appendonly=redis_appendonly,
                               username=redis_username, password=redis_password)
            self.fake = FakeProvider(tmpdir=self.dir, log_bodies=log_bodies)
            if tls not in (None, "h2", "h1"):
                raise ValueError(f"tls={tls!r}: None, 'h2' or 'h1'")
            if tls:
                self.tls = TlsFront(self.fake.port, tmpdir=self.dir, log=tls_log)
            self.env = {var: key for var, key in PROVIDER_KEYS.values()}
            if redis_password:
                self.env[REDIS_PASSWORD_ENV] = redis_password
            self.providers = providers if providers is not None else [
                {"name": t, "type": t, "base_url": self.provider_url(PROVIDER_PREFIX[t], tls),
                 "api_key_env": PROVIDER_KEYS[t][0], "timeout_ms": 10000, "max_connections": 64,
                 "rpm": 0, "tpm": 0, **({"ca_file": self.tls.ca_file} if tls else {})}
                for t in ("openai", "anthropic", "gemini")]
            self.set_fake_rules(fake_rules or [])
            self.config = {
                "kafka": {"brokers": self.bootstrap, "group": self.group,
                          "input_topics": [self.jobs_topic], "results_topic": self.results_topic,
                          "costs_topic": self.costs_topic, "dlq_topic": self.dlq_topic,
                          "properties": []},
                "redis": {"host": self.redis.host, "port": self.redis.port,
                          "password_env": REDIS_PASSWORD_ENV if redis_password else "",
                          "username": redis_username or "",
                          "db": 0, "key_prefix": f"py{uuid.uuid4().hex[:6]}:", "timeout_ms": 1000},
                "worker": {"max_in_flight": 1000, "default_strategy": "balanced",
                           "default_budget": "default", "max_attempts": 4, "retry_same": 0,
                           "max_retry_after_ms": 30000, "on_budget_exhausted": "fail",
                           "drain_timeout_ms": 10000, "max_job_bytes": 1048576,
                           "dedupe_ttl_s": 172800,
                           "metrics_listen": f"127.0.0.1:{free_port()}" if metrics else "",
                           "log_level": "info"},
                "router": {"balanced_slack": 0.10, "window_s": 300, "breaker_failures": 5,
                           "breaker_cooldown_ms": 30000, "auto_floor": 0.3},
                "providers": self.providers,
                "models": models if models is not None else [dict(m) for m in DEFAULT_MODELS],
                "budgets": budgets if budgets is not None else [
                    {"name": "default", "limit_usd": 100.0, "period": "none", "parent": ""}],
                "rules": rules or None,
            }
            deep_merge(self.config, config or {})
            self.config_path = self.dir / "promptyard.cfg"
            self.write_config()
        except BaseException:
            self.close()
            raise

    # -- config

    def write_config(self, path=None):
        """(Re)writes self.config; returns the path."""
        return write_config(path or self.config_path, self.config)

    @property
    def metrics_url(self):
        addr = self.config["worker"].get("metrics_listen")
        return f"http://{addr}" if addr else None

    # -- fake provider

    def provider_url(self, prefix, tls=None):
        """A base_url for prefix on the fake: plain HTTP (tls=None), or through
        the TLS front offering HTTP/2 ("h2") or only HTTP/1.1 ("h1")."""
        if not tls:
            return self.fake.url(prefix)
        return self.tls.url(prefix, http2=tls == "h2")

    def _fake_prefix(self, base_url):
        """The fake's path prefix a provider's base_url reaches, or None."""
        for root in [self.fake.url()] + ([self.tls.url("", True), self.tls.url("", False)]
                                         if self.tls else []):
            if base_url.startswith(root):
                return base_url[len(root):]
        return None

    def set_fake_rules(self, rules):
        """Sets the fake's rules: each rule whose prefix is one of the stack's
        provider prefixes gets that provider's api_key (unless it has one), and
        key-check rules for every provider are appended, so keys stay checked."""
        by_prefix = {}
        for p in self.providers:
            prefix = self._fake_prefix(p.get("base_url", ""))
            if p.get("type") in PROVIDER_KEYS and prefix is not None:
                var = p.get("api_key_env")
                key = self.env.get(var) if var else None
                if key:
                    by_prefix[prefix] = key
        out = []
        for r in rules:
            r = dict(r)
            if "api_key" not in r and r.get("prefix") in by_prefix:
                r["api_key"] = by_prefix[r["prefix"]]
            out.append(r)
        out += [{"prefix": prefix, "model": "*", "api_key": key} for prefix, key in by_prefix.items()]
        return self.fake.set_rules(out)

    # -- workers

    def worker(self, env=None, args=(), **kw):
        """Starts a worker on this stack's config (keys in its environment)."""
        w = Worker(self.config_path, env={**self.env, **(env or {})}, args=args, **kw)
        self.workers.append(w)
        return w

    # -- kafka

    def produce_jobs(self, jobs, keys=None, headers=None, topic=None):
        return produce(self.bootstrap, topic or self.jobs_topic, jobs, keys=keys, headers=headers)

    def results(self, n=None, timeout_s=60):
        return consume_json(self.bootstrap, self.results_topic, n, timeout_s)

    def costs(self, n=None, timeout_s=60):
        return consume_json(self.bootstrap, self.costs_topic, n, timeout_s)

    def dlq(self, n=None, timeout_s=60):
        return consume_json(self.bootstrap, self.dlq_topic, n, timeout_s)

    def committed(self, topic=None):
        return committed_offsets(self.bootstrap, self.group, topic or self.jobs_topic)

    # -- lifetime

    def close(self):
        """Kills workers, then stops the fake, the cluster and Redis. Idempotent.
        The dir stays until the test's cleanup so failure output can show logs."""
        errors = []
        for obj in [*reversed(self.workers), self.tls, self.fake, self.cluster, self.redis]:
            if obj is None:
                continue
            try:
                obj._cleanup()
            except Exception as e:
                errors.append(f"{obj!r}: {e}")
        self.workers = []
        self.fake = self.cluster = self.redis = self.tls = None
        if errors:
            raise RuntimeError("; ".join(errors))

    _cleanup = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return f"Stack({self.dir})"
