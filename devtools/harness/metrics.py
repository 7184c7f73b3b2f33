"""Read a running process's /metrics as numbers: the e2e tests assert on them, the benchmarks
measure with them."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Prometheus text -> {(sample name, labels): value}."""
    response = httpx.get(url, timeout=5)
    response.raise_for_status()
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of `name` whose labels include `labels` (summed if several match)."""
    wanted = set(labels.items())
    values = [
        value
        for (sample_name, got), value in samples.items()
        if sample_name == name and wanted <= got
    ]
    return sum(values) if values else None
