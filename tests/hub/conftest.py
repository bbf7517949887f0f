"""Fixtures of the hub tests: the real `zoo hub serve` server (see served.py)."""

from tests.hub.served import hf_client, served  # noqa: F401  (fixtures)
