"""Fakes of the real abstractions (they subclass them), for use-case tests with no I/O."""
