"""Operator and developer tools: status and membership commands, the load generator, the demo,
and the loopback cluster the tests and benchmarks run."""
