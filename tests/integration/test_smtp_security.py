"""SMTP to a relay that requires STARTTLS and AUTH: order mail (one kept connection) and
campaign batches (a connection per batch) both upgrade, verify the relay's certificate and
log in; without the settings the relay refuses them."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from services.notifications.mailer import MailDeliveryError, Mailer
from services.notifications.smtp_security import SmtpSecurity
from tests.support.certs import Certs, make_certs

USER, PASSWORD = "doorbuster-mailer", "s3cret-pw"


class Inbox:
    def __init__(self) -> None:
        self.recipients: list[str] = []
        self.secured: list[bool] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.recipients += envelope.rcpt_tos
        self.secured.append(session.ssl is not None and session.authenticated)
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(Path(tmp_path_factory.mktemp("smtp-certs")))


@pytest.fixture
def relay(certs: Certs) -> Iterator[tuple[Controller, Inbox]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        server_hostname="localhost",
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=authenticator,
    )
    controller.start()
    yield controller, inbox
    controller.stop()


def mailer(controller: Controller, security: SmtpSecurity) -> Mailer:
    # `localhost`: the name on the relay's certificate, which the client verifies.
    return Mailer("localhost", controller.port, "Shop <orders@doorbuster.test>", 5.0, security)


def secured(certs: Certs) -> SmtpSecurity:
    return SmtpSecurity(starttls=True, ca_file=str(certs.ca), username=USER, password=PASSWORD)


async def test_order_mail_goes_over_starttls_with_auth(relay, certs):
    controller, inbox = relay
    mail = mailer(controller, secured(certs))
    await mail.send(mail.compose("ann@example.com", "Your order", "Thanks", "order:1"))
    assert inbox.recipients == ["ann@example.com"] and inbox.secured == [True]


async def test_campaign_batches_go_over_starttls_with_auth(relay, certs):
    controller, inbox = relay
    mails = [(f"sub{i}@example.com", b"Subject: Sale\r\n\r\nNow.\r\n") for i in range(3)]
    async with mailer(controller, secured(certs)).session() as smtp:
        results = await smtp.send_all(mails)
    assert results == [None, None, None]
    assert inbox.recipients == [to for to, _ in mails] and inbox.secured == [True] * 3


@pytest.mark.parametrize(
    "security",
    [
        SmtpSecurity(),  # plain: the relay wants STARTTLS first
        SmtpSecurity(starttls=True),  # no CA: the test certificate is not trusted
    ],
    ids=["plain", "untrusted"],
)
async def test_without_tls_or_trust_nothing_is_sent(relay, security):
    controller, inbox = relay
    mail = mailer(controller, security)
    with pytest.raises(MailDeliveryError):
        await mail.send(mail.compose("ann@example.com", "Your order", "Thanks", "order:2"))
    try:
        async with mail.session() as smtp:
            [result] = await smtp.send_all([("ann@example.com", b"Subject: x\r\n\r\ny\r\n")])
    except MailDeliveryError:
        result = None  # refused at connect (the certificate): nothing was tried
    else:
        # 530 "must issue STARTTLS": the session is wrong, not the address (retry, never
        # record the subscriber as refused).
        assert type(result) is MailDeliveryError, result
    assert inbox.recipients == []


async def test_wrong_credentials_are_refused(relay, certs):
    controller, inbox = relay
    wrong = SmtpSecurity(starttls=True, ca_file=str(certs.ca), username=USER, password="nope")
    with pytest.raises(MailDeliveryError):
        async with mailer(controller, wrong).session():
            pass
    assert inbox.recipients == []


async def test_order_mail_keeps_its_connection_and_reopens_one_the_relay_closed(relay, certs):
    controller, inbox = relay
    mail = mailer(controller, secured(certs))
    for n in range(3):
        await mail.send(mail.compose(f"p{n}@example.com", "Your order", "Thanks", f"order:{n}"))
    kept = mail._kept
    assert kept is not None and inbox.recipients == [f"p{n}@example.com" for n in range(3)]
    # The relay drops the idle connection (a timeout, a restart): the next mail goes out once,
    # on a new one.
    kept._writer.transport.abort()
    await mail.send(mail.compose("late@example.com", "Your order", "Thanks", "order:late"))
    assert inbox.recipients[-1] == "late@example.com" and len(inbox.recipients) == 4
    assert mail._kept is not kept and inbox.secured == [True] * 4
