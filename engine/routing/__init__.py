"""Routing: the compiled rule set, first match indexed on `match` fields, variants, and explanations of why a rule did or did not match."""
