"""Mailbox administration on the real adapters: the login check over IMAP (Dovecot) and SMTP (the
simulated provider) over TLS, the password to Secrets Manager and the configuration to DynamoDB
(moto), and the health read from the quota table and the inbox's list of the messages «da
gestire»."""

from __future__ import annotations

import smtplib
from dataclasses import replace

import pytest

from local.pecbuild import builder
from pecflow import bootstrap
from pecflow.adapters.ratelimit import RateLimiter
from pecflow.adapters.secrets import password_from_secret
from pecflow.domain.access import Role
from pecflow.domain.quota import sending_policy
from pecflow.services.mailbox_desk import MailboxLoginFailed

POLL = 5 * 60


@pytest.mark.timeout(180)
def test_a_mailbox_added_after_real_logins_and_its_health(stack):
    net = stack.network
    epsilon = net.add_provider(builder.Gestore("Epsilon PEC S.p.A.", "pec.epsilon.test"))
    office = stack.add_company_mailbox(epsilon, "direzione@pec.epsilon.test")
    fresh = stack.add_company_mailbox(epsilon, "acquisti@pec.epsilon.test", register=False)
    stack.add_person("carla", "carla@epsilon.test", "Carla", {office.address: "admin"})
    config = replace(stack.deployment(), quota_table=stack.aws.physical("QuotaTable"))
    people = bootstrap.people_admin(config)
    desk = bootstrap.mailbox_desk(config, people=people, audit=bootstrap.audit_log(config))
    carla = people.store.person("carla")
    wanted = replace(stack.mailbox_config(fresh.address, epsilon), quota_preset="legalmail")

    with pytest.raises(MailboxLoginFailed) as refused:
        desk.add(carla, wanted, "not-the-password")
    assert (refused.value.step, refused.value.kind) == ("imap", "auth")
    assert desk.mailboxes.get(fresh.address) is None
    smtp_elsewhere = replace(wanted, smtp_host="127.0.0.1", smtp_port=1)
    with pytest.raises(MailboxLoginFailed) as refused:
        desk.add(carla, smtp_elsewhere, fresh.password)
    assert (refused.value.step, refused.value.kind) == ("smtp", "unreachable")
    assert desk.mailboxes.get(fresh.address) is None

    checked = desk.add(carla, wanted, fresh.password)
    assert checked["messages"] == 0
    secret = config.client("secretsmanager").get_secret_value(
        SecretId=desk.mailboxes.get(fresh.address).secret_id
    )
    assert password_from_secret(secret["SecretString"]) == fresh.password
    assert people.store.person("carla").roles[fresh.address] is Role.ADMIN

    # health: one message da gestire after a poll, two sends counted in the current minute
    with smtplib.SMTP(net.mx_host, net.mx_port, timeout=20) as mx:
        mx.sendmail("x@posta-ordinaria.test", [fresh.address],
                    f"From: x@posta-ordinaria.test\r\nTo: {fresh.address}\r\nSubject: Ordine\r\n"
                    "Message-ID: <ordine-1@posta-ordinaria.test>\r\n\r\nOrdine.\r\n".encode())  # fmt: skip
    stack.runner.advance(POLL)
    net.wait_idle(60)
    policy = sending_policy("legalmail")
    limiter = RateLimiter(config.quota_table, lambda mailbox: policy, dynamodb=config.resource("dynamodb"))
    now = stack.clock.now()
    assert limiter.acquire(fresh.address, now - 120) and limiter.acquire(fresh.address, now - 5)
    assert limiter.acquire(fresh.address, now)
    carla = people.store.person("carla")
    desk = replace(desk, now=lambda: now)
    shown, health = desk.health(carla, fresh.address)
    assert shown.quota_preset == "legalmail"
    assert health["to_handle"] == 1 and health["last_success_at"]
    assert health["quota"]["used"] == 2 and health["quota"]["limit"] == 6
