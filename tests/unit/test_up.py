"""`make up`'s own choices: ports moved by UP_PORT_OFFSET, and the services pointed at the
emulator and sink the plan starts (wherever they listen)."""

import socket

from devtools.plan import Ports, Process
from devtools.up import local_endpoints, ports_from_env, ports_taken, taken_ports


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


def test_a_port_another_program_holds_is_named_with_its_process_and_holder():
    with socket.socket() as other, socket.socket() as free:
        other.bind(("127.0.0.1", 0))
        other.listen()
        free.bind(("127.0.0.1", 0))  # bound, not listening: closed below, then free
        held, unheld = other.getsockname()[1], free.getsockname()[1]
        free.close()
        processes = [
            Process("orders-api", [], f"http://127.0.0.1:{unheld}/readyz"),
            Process("bulk-pool", [], f"http://127.0.0.1:{held}/readyz"),
            Process("smtp", [], f"tcp://127.0.0.1:{held}"),
            Process("beat", []),  # listens nowhere
        ]
        taken = taken_ports(processes)
        assert [(process.name, port) for process, port, _ in taken] == [
            ("bulk-pool", held),
            ("smtp", held),
        ]
        message = ports_taken(taken)
    lines = message.splitlines()
    assert lines[0].startswith(f"==> make up: bulk-pool did not start: port {held} is already")
    assert lines[1].startswith(f"==> make up: smtp did not start: port {held}")
    assert "Nothing was started" in lines[2]


def test_the_holder_is_left_out_when_ss_cannot_name_it():
    taken = [(Process("orders-api", [], "http://127.0.0.1:8001/readyz"), 8001, "")]
    assert ports_taken(taken).splitlines()[0] == (
        "==> make up: orders-api did not start: port 8001 is already in use"
    )
