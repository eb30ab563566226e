"""The server, in layers: api/ (servicers) over chat/ (the rules) over
storage/ (SQLite, the writer); cluster/ (replication) over storage/;
build.py builds them into a node (node.py); errors.py and protocol.py are shared by all.
Each layer's __init__ says what it may import; tests/test_layout.py holds it."""
