"""The durable store: outcomes and revisions, notifications, attempts and receipts, events and replies, rule sets,
dead letters, and the versioned migrations. The only package that writes SQL (the report reads through its own queries)."""
