"""Integration tests: the adapters against moto in-process, with template.yaml's resources."""

from __future__ import annotations

from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture
def aws(monkeypatch):
    """Fresh in-process moto with every resource template.yaml creates."""
    from moto import mock_aws

    from local.aws import LocalAws

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield LocalAws.in_process(TEMPLATE)


@pytest.fixture(scope="module")
def moto_stack():
    """One in-process moto stack with template.yaml's resources, shared by a module's tests
    (each test makes its own keys)."""
    from moto import mock_aws

    from local.aws import LocalAws

    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
            patch.delenv(name, raising=False)
        with mock_aws():
            yield LocalAws.in_process(TEMPLATE)


@pytest.fixture
def wiring(aws):
    """An ingestor on moto's tables and bucket."""
    from pecflow.adapters.archive import Archive
    from pecflow.adapters.dynamodb import MailboxStore, MessageStore, OutgoingStore
    from pecflow.services.receive import Ingestor

    ddb = aws.resource("dynamodb")
    return Ingestor(
        archive=Archive(aws.physical("ArchiveBucket"), aws.client("s3")),
        messages=MessageStore(aws.physical("MessagesTable"), ddb),
        mailboxes=MailboxStore(aws.physical("MailboxesTable"), ddb),
        outgoing=OutgoingStore(
            aws.physical("OutgoingTable"), ddb, campaigns_table=aws.physical("CampaignsTable")
        ),
    )
