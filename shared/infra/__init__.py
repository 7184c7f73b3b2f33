"""Infrastructure: settings by concern, database, observability, broker TLS, migrations."""
