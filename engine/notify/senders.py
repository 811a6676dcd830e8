"""How a delivery goes out: a webhook's POST, signed, and a mail through the SMTP server.

A webhook's body is the event as JSON; `Roster-Signature: t=<unix seconds>,v1=<hex>` carries the
HMAC-SHA256, keyed by the webhook's `secret`, of `<t>.` followed by the body's bytes, so that the
receiver can check both who sent it and when (refuse an old `t`: a replay). `Roster-Delivery` is the
delivery's id, the same on each retry: a receiver that saw it already has it.

The errors said of a failed try name the kind of failure and the status, never the URL (it may hold the
receiver's token) nor a password.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiohttp
import orjson

from engine.notify.settings import SmtpSettings, Webhook

SIGNATURE_HEADER = "Roster-Signature"


class DeliveryError(Exception):
    """A try that failed, in words safe to record."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Roster-Signature` value of `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, *, now: float, tolerance_s: float = 300) -> bool:
    """Whether `header` signs `body` with `secret`, sent within `tolerance_s` of `now` (a receiver's
    check, written out here as the documentation's example)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return abs(now - timestamp) <= tolerance_s and hmac.compare_digest(expected, fields.get("v1", ""))


async def post(session: aiohttp.ClientSession, hook: Webhook, body: dict[str, Any]) -> None:
    """POST one delivery; raises `DeliveryError` unless the receiver answered 2xx."""
    data = orjson.dumps(body)
    headers = {
        "Content-Type": "application/json",
        "Roster-Event": str(body.get("event")),
        "Roster-Delivery": str(body.get("id")),
        SIGNATURE_HEADER: signature(hook.secret, int(time.time()), data),
    }
    timeout = aiohttp.ClientTimeout(total=hook.timeout_s)
    try:
        async with session.post(
            hook.url, data=data, headers=headers, timeout=timeout, allow_redirects=False
        ) as answer:
            await answer.read()
            if not 200 <= answer.status < 300:
                raise DeliveryError(f"the receiver answered HTTP {answer.status}")
    except TimeoutError:
        raise DeliveryError(f"no answer within {hook.timeout_s:g} s") from None
    except aiohttp.ClientConnectorError as exc:
        raise DeliveryError(
            f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or 'refused'})"
        ) from None
    except aiohttp.ClientError as exc:
        raise DeliveryError(f"the request failed ({type(exc).__name__})") from None


def message(smtp: SmtpSettings, to: tuple[str, ...], subject: str, body: dict[str, Any]) -> EmailMessage:
    """The mail of one delivery: the event's text, then its details."""
    msg = EmailMessage()
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(idstring=f"roster-{body.get('id')}", domain=smtp.sender.rsplit("@", 1)[1])
    msg["Roster-Event"] = str(body.get("event"))
    details = orjson.dumps(body.get("details"), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    msg.set_content(
        f"{body.get('text')}\n\nEvent: {body.get('event')}\nJob: {body.get('job') or '-'}\n\n{details}\n"
    )
    return msg


async def send(smtp: SmtpSettings, to: tuple[str, ...], subject: str, body: dict[str, Any]) -> None:
    """Send one delivery's mail to `to` (smtplib, in a thread: a few mails an hour need no other
    client)."""
    try:
        msg = message(smtp, to, subject, body)
    except ValueError:  # a header the email package refuses (a line break in it)
        raise DeliveryError("the mail could not be written: a header holds a line break") from None
    try:
        await asyncio.to_thread(_send, smtp, msg)
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"the SMTP server answered {exc.smtp_code}") from None
    except smtplib.SMTPRecipientsRefused:
        raise DeliveryError("the SMTP server refused every recipient") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"cannot send by {smtp.host}:{smtp.port} ({type(exc).__name__})") from None


def _send(smtp: SmtpSettings, msg: EmailMessage) -> None:
    context = ssl.create_default_context()
    client = (
        smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s, context=context)
        if smtp.tls
        else smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
    )
    with client:
        if smtp.starttls:
            client.starttls(context=context)
        if smtp.username is not None and smtp.password is not None:
            client.login(smtp.username, smtp.password)
        client.send_message(msg)
