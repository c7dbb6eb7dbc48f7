"""Kafka from tests, with confluent_kafka (librdkafka underneath).

    produce(bootstrap, topic, values, keys=None, headers=None) -> [(partition, offset)]
    consume_all(bootstrap, topic, n, timeout_s=30) -> [Msg(key, value, headers, partition, offset)]
    committed_offsets(bootstrap, group, topic) -> {partition: offset or None}
    end_offsets(bootstrap, topic) -> {partition: high watermark}

Reads assign every partition at the beginning (no group join, so no
rebalance wait) under a throwaway group id that never commits.
"""
import json
import logging
import time
import uuid
from collections import namedtuple

from confluent_kafka import (OFFSET_BEGINNING, OFFSET_INVALID, Consumer, KafkaError, Producer,
                             TopicPartition)

META_TIMEOUT_S = 10

# librdkafka's own log lines (connection refused while a broker is down, ...)
# would clutter test output; tests assert on outcomes instead.
_quiet = logging.getLogger("tests.kafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


class Msg(namedtuple("Msg", "key value headers partition offset")):
    """One record: key and value are bytes (or None), headers a list of (str, bytes)."""

    __slots__ = ()

    def json(self):
        return json.loads(self.value)

    @property
    def text(self):
        return None if self.value is None else self.value.decode("utf-8")

    def header(self, name):
        """The last value of header `name` (bytes), or None."""
        found = None
        for k, v in self.headers:
            if k == name:
                found = v
        return found


def _encode(v):
    if v is None or isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    return json.dumps(v).encode("utf-8")


def _headers_for(headers, i, n):
    """headers: None, one dict/list for every message, or a list of n per-message ones."""
    if headers is None:
        return None
    if isinstance(headers, dict):
        h = headers
    elif (isinstance(headers, list) and len(headers) == n
          and all(x is None or isinstance(x, (dict, list)) for x in headers)):
        h = headers[i]
    else:
        h = headers
    if h is None:
        return None
    items = h.items() if isinstance(h, dict) else h
    return [(k, _encode(v)) for k, v in items]


def produce(bootstrap, topic, values, keys=None, headers=None, partition=None, timeout_s=30,
            config=None):
    """Produces values (bytes, str, or anything JSON-serialisable) in order; keys
    likewise or None. Flushes and asserts every message was delivered.
    Returns [(partition, offset)] in input order."""
    values = list(values)
    if keys is not None:
        keys = list(keys)
        assert len(keys) == len(values), "keys and values differ in length"
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
            "message.timeout.ms": int(timeout_s * 1000), "logger": _quiet}
    conf.update(config or {})
    p = Producer(conf)
    results = [None] * len(values)
    errors = []

    def on_delivery(idx):
        def cb(err, msg):
            if err is not None:
                errors.append(f"message {idx}: {err}")
            else:
                results[idx] = (msg.partition(), msg.offset())
        return cb

    for i, v in enumerate(values):
        kw = {"value": _encode(v), "on_delivery": on_delivery(i)}
        if keys is not None and keys[i] is not None:
            kw["key"] = _encode(keys[i])
        h = _headers_for(headers, i, len(values))
        if h:
            kw["headers"] = h
        if partition is not None:
            kw["partition"] = partition
        for _ in range(1000):  # local queue full: serve callbacks and retry
            try:
                p.produce(topic, **kw)
                break
            except BufferError:
                p.poll(0.05)
        else:
            raise RuntimeError("producer queue stayed full")
        p.poll(0)
    left = p.flush(timeout_s)
    if left:
        p.purge()   # do not leave the messages to the destructor
        p.flush(0)
    assert not errors, f"produce to {topic} failed: {errors[:5]}"
    assert left == 0 and all(r is not None for r in results), \
        f"produce to {topic}: {left} messages not delivered within {timeout_s} s"
    return results


def _consumer(bootstrap, group=None, config=None):
    conf = {"bootstrap.servers": bootstrap,
            "group.id": group or f"pytest-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "enable.partition.eof": False, "logger": _quiet}
    conf.update(config or {})
    return Consumer(conf)


def _partitions(client, topic, deadline):
    """Partition ids of topic, waiting (until deadline) for it to exist."""
    last = None
    while True:
        try:
            md = client.list_topics(topic, timeout=max(0.5, min(META_TIMEOUT_S, deadline - time.monotonic())))
            t = md.topics.get(topic)
            if t is not None and t.error is None and t.partitions:
                return sorted(t.partitions)
            last = t.error if t is not None else "no such topic"
        except Exception as e:  # KafkaException while brokers are down
            last = e
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topic {topic}: no metadata ({last})")
        time.sleep(0.1)


def consume_all(bootstrap, topic, n=None, timeout_s=30, config=None):
    """Reads topic from the beginning of every partition. Returns once n messages
    are in, or when timeout_s passes (with what arrived: callers assert the count).
    n=None reads up to the end offsets as they are when called."""
    deadline = time.monotonic() + timeout_s
    c = _consumer(bootstrap, config=config)
    msgs = []
    try:
        parts = _partitions(c, topic, deadline)
        ends = None
        if n is None:
            ends = {}
            for p in parts:
                _, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=META_TIMEOUT_S)
                ends[p] = hi
            n = sum(ends.values())  # an upper bound on a fresh topic; exact check below
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        pos = {p: 0 for p in parts}
        while len(msgs) < n and time.monotonic() < deadline:
            if ends is not None and all(pos[p] >= ends[p] for p in parts):
                break
            m = c.poll(min(0.5, max(0.01, deadline - time.monotonic())))
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                continue  # transient (broker down, leader change): keep polling
            pos[m.partition()] = m.offset() + 1
            msgs.append(Msg(m.key(), m.value(), list(m.headers() or []), m.partition(), m.offset()))
    finally:
        c.close()
    return msgs


def consume_json(bootstrap, topic, n=None, timeout_s=30):
    """consume_all, values parsed as JSON."""
    return [m.json() for m in consume_all(bootstrap, topic, n, timeout_s)]


def committed_offsets(bootstrap, group, topic, timeout_s=META_TIMEOUT_S):
    """{partition: committed offset, or None where the group has none}. Does not
    join the group, so it does not disturb its members."""
    deadline = time.monotonic() + timeout_s
    c = _consumer(bootstrap, group=group)
    try:
        parts = _partitions(c, topic, deadline)
        tps = c.committed([TopicPartition(topic, p) for p in parts], timeout=timeout_s)
        return {tp.partition: (None if tp.offset == OFFSET_INVALID or tp.offset < 0 else tp.offset)
                for tp in tps}
    finally:
        c.close()


def end_offsets(bootstrap, topic, timeout_s=META_TIMEOUT_S):
    """{partition: high watermark} (the offset the next message will get)."""
    deadline = time.monotonic() + timeout_s
    c = _consumer(bootstrap)
    try:
        parts = _partitions(c, topic, deadline)
        out = {}
        for p in parts:
            _, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            out[p] = hi
        return out
    finally:
        c.close()
