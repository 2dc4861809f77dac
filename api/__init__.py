"""BasinWatch interfaces: command line, HTTP API, storage."""
