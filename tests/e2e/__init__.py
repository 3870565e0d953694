"""End-to-end tests: real Redis, a real worker process, a real HTTP receiver."""
