"""A small stateful emulator of the Stripe API subset Doorbuster uses (local and tests only).

Real Stripe cannot be reached from these machines and `localstripe` was measured
unfit (no idempotency, declines that succeed, slowing down as it fills), see
CONTRACT.md "Stripe emulator". Start it with `python -m devtools.stripe_emulator`.
"""

from .app import create_app
from .config import EmulatorConfig

__all__ = ["EmulatorConfig", "create_app"]
