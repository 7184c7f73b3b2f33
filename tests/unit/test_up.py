"""`make up`'s own choices: ports moved by UP_PORT_OFFSET, and the services pointed at the
emulator and sink the plan starts (wherever they listen)."""

from devtools.plan import Ports
from devtools.up import local_endpoints, ports_from_env


def test_without_an_offset_the_contract_ports(monkeypatch):
    monkeypatch.delenv("UP_PORT_OFFSET", raising=False)
    assert ports_from_env() == Ports()
    assert (Ports().orders, Ports().stripe, Ports().smtp) == (8001, 12111, 1025)


def test_an_offset_moves_every_port(monkeypatch):
    monkeypatch.setenv("UP_PORT_OFFSET", "40000")
    ports = ports_from_env()
    assert (ports.orders, ports.inventory, ports.notifications) == (48001, 48002, 48003)
    assert (ports.stripe, ports.smtp, ports.metrics) == (52111, 41025, 49100)


def test_services_reach_the_emulator_and_sink_where_the_plan_starts_them():
    ports = Ports(stripe=52111, smtp=41025)
    assert local_endpoints(ports, True, True) == {
        "STRIPE_API_BASE": "http://127.0.0.1:52111",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": "41025",
    }
    # STRIPE_API_BASE or SMTP_HOST set by the developer: theirs stands, nothing is added.
    assert local_endpoints(ports, False, False) == {}
