"""promptyard test support: the programs a test stack is made of, driven from Python.

    from tests.lib.stack import Redis, MockCluster, FakeProvider, Worker, Stack
    from tests.lib.stack import write_config, produce, consume_all, committed_offsets, end_offsets

Modules:
    procs      process and temp-dir registry (everything started is cleaned up), env defaults
    libconfig  Python dict -> libconfig text (SPEC section 8)
    kafkautil  produce / consume / offsets with confluent_kafka
    stack      Redis, MockCluster, FakeProvider, Worker, Stack (re-exports the others)
    runfile    runs one tests/integration/test_*.py file (used by tests/run.py)

Use /usr/bin/python3 (Debian's, which has confluent_kafka, redis and jsonschema).
"""
