"""A local DKIM key for `make up`, the test stack and the benchmarks, so mail is signed there as
in production (docs/campaigns.md, "DKIM"): Ed25519, made once under var/dkim/ and kept.

A developer's own key (DKIM_PRIVATE_KEY_FILE or DKIM_PRIVATE_KEY in the environment) wins;
either set to nothing (`DKIM_PRIVATE_KEY_FILE= make up`) sends unsigned mail, as the
benchmark's unsigned comparison does.
Mail signed with it verifies only against its record (`doorbuster dkim-record`), which no public
DNS holds: the tests verify against the key itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from shared.infra.dkim_key import new_ed25519_pem

ROOT = Path(__file__).resolve().parents[1]
DEV_KEY = ROOT / "var" / "dkim" / "dev-ed25519.pem"


def dev_dkim_env(environ: Mapping[str, str], path: Path = DEV_KEY) -> dict[str, str]:
    """`{"DKIM_PRIVATE_KEY_FILE": path}` (the key made first if missing), or nothing when the
    environment names a key of its own, or sets one to nothing."""
    if "DKIM_PRIVATE_KEY_FILE" in environ or "DKIM_PRIVATE_KEY" in environ:
        return {}
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Several test stacks may start at once: write aside, then rename into place.
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_bytes(new_ed25519_pem())
        partial.chmod(0o600)
        partial.replace(path)
    return {"DKIM_PRIVATE_KEY_FILE": str(path)}
