"""Dev and test tooling: never imported by services, shared, workers or ops (import-linter)."""
