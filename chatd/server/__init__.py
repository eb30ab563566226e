"""The server: node wiring, servicers, the replication driver, writer, store, hub, chat rules."""
