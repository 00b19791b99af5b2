"""The front door: decode, gate (schema, dedup, approval), CSV, batches stored in one transaction, dead letters.

Every way in (dry-run, `herald test`, `ingest`, `post`, HTTP) goes through this package."""
