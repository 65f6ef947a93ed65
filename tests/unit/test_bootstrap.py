"""The composition root: every part of a service can be replaced, a replaced part builds no
adapter, and a name that is no part of the service is refused."""

from __future__ import annotations

import pytest

from pecflow import bootstrap
from pecflow.config import Config
from pecflow.domain.ports import no_checkpoint
from pecflow.services.rules import RuleRunner
from tests.fakes import (
    FakeArchive,
    FakeCampaignFiles,
    FakeCampaignStore,
    FakeMailboxStore,
    FakeMessageStore,
    FakeOutgoingStore,
    FakeQueue,
)

CONFIG = Config(stack_name="prova", mailboxes_table="Mailboxes", region="eu-south-1")


@pytest.fixture(autouse=True)
def no_aws(monkeypatch):
    """Building a service whose parts are all given must not create a single AWS client."""

    def refused(self, service):
        raise AssertionError(f"an AWS {service} client was built")

    monkeypatch.setattr(Config, "client", refused)
    monkeypatch.setattr(Config, "resource", refused)


class RulesInMemory:
    def rules(self, mailbox):
        return None

    def set_rules(self, mailbox, document, *, by):
        raise AssertionError("not written here")


def test_every_part_of_the_ingestor_is_replaceable():
    def crash(step, **where):
        raise RuntimeError(step)

    parts = {
        "archive": FakeArchive(),
        "messages": FakeMessageStore(),
        "mailboxes": FakeMailboxStore(),
        "outgoing": FakeOutgoingStore(),
        "rules": RuleRunner(RulesInMemory()),
    }
    ingestor = bootstrap.ingestor(CONFIG, **parts, checkpoint=crash)
    assert all(getattr(ingestor, name) is part for name, part in parts.items())
    assert ingestor.checkpoint is crash
    assert bootstrap.ingestor(CONFIG, **parts).checkpoint is no_checkpoint, "production: no crash point"


def test_the_fanout_and_the_campaign_admin_on_fakes():
    campaigns, outgoing, queue = FakeCampaignStore(), FakeOutgoingStore(), FakeQueue()
    fanout = bootstrap.fanout(
        CONFIG,
        files_of=lambda cid: FakeCampaignFiles(cid),
        campaigns=campaigns,
        outgoing=outgoing,
        send_queue=queue,
        fanout_queue=None,
        margin=5.0,
    )
    assert (fanout.campaigns, fanout.outgoing, fanout.send_queue, fanout.margin) == (
        campaigns,
        outgoing,
        queue,
        5.0,
    )
    admin = bootstrap.campaign_admin(CONFIG, campaigns=campaigns, outgoing=outgoing, send_queue=queue)
    assert admin.campaigns is campaigns


def test_a_name_that_is_no_part_is_refused():
    with pytest.raises(TypeError):
        bootstrap.campaign_admin(
            CONFIG,
            campaigns=FakeCampaignStore(),
            outgoing=FakeOutgoingStore(),
            send_queue=FakeQueue(),
            archiv=1,
        )


def test_a_part_not_given_is_built_with_the_real_adapter():
    with pytest.raises(AssertionError, match="an AWS dynamodb client was built"):
        bootstrap.campaign_admin(CONFIG, outgoing=FakeOutgoingStore(), send_queue=FakeQueue())
