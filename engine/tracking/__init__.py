"""Tracking: signed tokens, the links templates use (rating, unsubscribe, click, open pixel), the candidate's pages and
their HTTP routes."""
