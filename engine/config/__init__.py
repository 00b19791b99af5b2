"""Configuration: herald.yaml (defaults, ${ENV} secrets, the resolved Config) and the deployment loaded as one unit."""
