"""Operator and developer tools: status and membership commands, the load generator, the demo."""
