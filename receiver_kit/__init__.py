"""receiver_kit: verify and process Trakkr webhooks exactly once (standard library only)."""
