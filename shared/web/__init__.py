"""The HTTP kit every service API is built with (docs/design.md, "HTTP")."""
