"""The whole stack as tests and benchmarks drive it: started on a slot of its own, shopped at
over HTTP, its emulator steered, its /metrics read."""
