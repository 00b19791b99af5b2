"""herald: tells interview candidates their result."""
