"""The sample events in events/ have the shapes the handlers read."""

from __future__ import annotations

import json
from pathlib import Path

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, S3Event, SQSEvent

from pecflow.services.polling import PollRequest, tick_of

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_every_function_has_a_sample_event():
    import yaml

    from local.template import load

    template = load(EVENTS.parent / "template.yaml")
    functions = [r.logical_id for r in template.of_type("AWS::Serverless::Function")]
    samples = {p.name for p in EVENTS.glob("*.json")}
    for logical_id in functions:
        folder = Path(template.function_properties(logical_id)["CodeUri"]).name
        assert any(name.startswith(folder + "_") for name in samples), f"no sample event for {folder}"
    assert yaml  # the template loader's dependency is there


def test_scheduler_tick():
    event = json.loads((EVENTS / "poll_scheduler_tick.json").read_text())
    assert tick_of(EventBridgeEvent(event).time) == "2026-03-02T08:05Z"


def test_poller_sqs_batch():
    event = SQSEvent(json.loads((EVENTS / "mailbox_poller_poll.json").read_text()))
    record = next(iter(event.records))
    request = PollRequest.parse(record.body)
    assert request.mailbox == record.attributes.message_group_id == "ufficio@pec.azienda.it"


def test_fanout_events():
    from pecflow.adapters.campaign_files import manifests_in

    s3_event = json.loads((EVENTS / "campaign_fanout_manifest.json").read_text())
    version = s3_event["Records"][0]["s3"]["object"].get("versionId")
    assert manifests_in(S3Event(s3_event).records) == [("solleciti-marzo-2026", version)]
    other = json.loads(json.dumps(s3_event).replace("manifest.json", "recipients.csv"))
    assert manifests_in(S3Event(other).records) == [], "only a manifest starts a fan-out"
    continuation = SQSEvent(json.loads((EVENTS / "campaign_fanout_continue.json").read_text()))
    assert json.loads(next(iter(continuation.records)).body)["campaign_id"] == "solleciti-marzo-2026"


def test_sender_event():
    event = SQSEvent(json.loads((EVENTS / "sender_job.json").read_text()))
    body = json.loads(next(iter(event.records)).body)
    assert body["message_id"].startswith("<pecflow.solleciti-marzo-2026.")


def test_api_event_takes_a_message_in_charge():
    from tests.unit.test_api import world

    app, _ = world()
    response = app.resolve(json.loads((EVENTS / "api_take_in_charge.json").read_text()), None)
    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"])["holder"] == "otto"
