"""A Redis Sentinel deployment for tests: a primary, its replicas and
sentinels, all real redis-server processes on free loopback ports.

    SentinelCluster(tmpdir=None, master="pymaster", replicas=1, sentinels=3, quorum=2,
                    down_after_ms=1000, failover_timeout_ms=3000, password=None)
        .master .primary (Redis) .replicas [Redis] .sentinels [Sentinel]
        .sentinel_addresses ["127.0.0.1:port", ...]
        .master_port() (what the sentinels say)   .server(port) -> the Redis on it
        .wait_failover(old_port, timeout) -> the new master's port
        .stop()
    Sentinel(conf_lines, tmpdir=None)   redis-server --sentinel
        .port .address .client() .kill() .stop()

Each process is registered with tests.lib.procs and killed at the end of
the test; each has its own temp dir.
"""
import subprocess

from . import procs
from .stack import START_TIMEOUT_S, Redis, _own_dir, _rmtree


class Sentinel:
    """redis-server --sentinel on a free loopback port, from conf_lines."""

    def __init__(self, conf_lines, tmpdir=None):
        self.host = "127.0.0.1"
        self.dir = _own_dir("sentinel-", tmpdir)
        self.port = procs.free_port()
        self.proc = None
        procs.register(self)
        conf = self.dir / "sentinel.conf"
        conf.write_text("\n".join([f"port {self.port}", f"bind {self.host}", f"dir {self.dir}",
                                   f"logfile {self.dir / 'sentinel.log'}", *conf_lines]) + "\n")
        try:
            self.proc = procs.Proc(["redis-server", str(conf), "--sentinel"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   register=False)
            procs.wait_until(self._answers, START_TIMEOUT_S, what=f"sentinel on {self.port}")
        except BaseException:
            self._cleanup()
            raise

    def _answers(self):
        if not self.proc.running():
            raise RuntimeError(f"redis-sentinel exited: {procs.tail(self.dir / 'sentinel.log', 5)}")
        try:
            return self.client(socket_timeout=1).ping()
        except Exception:
            return False

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def client(self, **kw):
        import redis
        kw.setdefault("socket_timeout", 5)
        return redis.Redis(host=self.host, port=self.port, decode_responses=True, **kw)

    def kill(self):
        if self.proc is not None:
            self.proc.kill()

    def stop(self):
        self.kill()
        _rmtree(self.dir)

    _cleanup = stop

    def __repr__(self):
        return f"Sentinel({self.address})"


class SentinelCluster:
    """A primary, `replicas` replicas of it and `sentinels` sentinels that
    monitor it as `master` with `quorum`; returns once the replicas are in
    sync and every sentinel knows them and the other sentinels (a failover
    is possible from then on)."""

    def __init__(self, tmpdir=None, master="pymaster", replicas=1, sentinels=3, quorum=2,
                 down_after_ms=1000, failover_timeout_ms=3000, password=None):
        self.master = master
        self.password = password
        self.primary = None
        self.replicas = []
        self.sentinels = []
        procs.register(self)
        try:
            self.primary = Redis(tmpdir=tmpdir, password=password, extra_args=self._auth_args())
            for _ in range(replicas):
                self.replicas.append(Redis(tmpdir=tmpdir, password=password, extra_args=[
                    *self._auth_args(), "--replicaof", self.primary.host, str(self.primary.port)]))
            conf = [f"sentinel monitor {master} {self.primary.host} {self.primary.port} {quorum}",
                    f"sentinel down-after-milliseconds {master} {down_after_ms}",
                    f"sentinel failover-timeout {master} {failover_timeout_ms}"]
            if password:
                conf.append(f"sentinel auth-pass {master} {password}")
            for _ in range(sentinels):
                self.sentinels.append(Sentinel(conf, tmpdir=tmpdir))
            procs.wait_until(self._settled, 60, interval=0.2, what="sentinels settled")
        except BaseException:
            self.stop()
            raise

    def _auth_args(self):
        return ["--masterauth", self.password] if self.password else []

    def _settled(self):
        for r in self.replicas:
            info = r.client().info("replication")
            if info.get("master_link_status") != "up":
                return False
        for s in self.sentinels:
            m = s.client().sentinel_master(self.master)
            if int(m.get("num-slaves", 0)) != len(self.replicas):
                return False
            if int(m.get("num-other-sentinels", 0)) != len(self.sentinels) - 1:
                return False
        return True

    @property
    def sentinel_addresses(self):
        return [s.address for s in self.sentinels]

    def servers(self):
        return [self.primary, *self.replicas]

    def server(self, port):
        """The Redis (primary or replica) on port."""
        return next(r for r in self.servers() if r.port == port)

    def master_port(self, sentinel=0):
        """The master's port as a sentinel names it."""
        addr = self.sentinels[sentinel].client().sentinel_get_master_addr_by_name(self.master)
        return int(addr[1])

    def wait_failover(self, old_port, timeout=60):
        """Waits until every running sentinel names a master other than
        old_port, and that server says it is one; returns its port."""
        def moved():
            ports = {self.master_port(i) for i, s in enumerate(self.sentinels)
                     if s.proc.running()}
            if len(ports) != 1 or old_port in ports:
                return None
            port = ports.pop()
            role = self.server(port).client().info("replication").get("role")
            return port if role == "master" else None
        return procs.wait_until(moved, timeout, interval=0.1, what="a failover")

    def stop(self):
        for obj in [*self.sentinels, *self.replicas, self.primary]:
            if obj is not None:
                obj.stop()

    _cleanup = stop

    def __repr__(self):
        return f"SentinelCluster({self.master}, primary={self.primary})"
