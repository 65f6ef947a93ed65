"""HTTP API (behind API Gateway's Cognito JWT authorizer) → the inbox, people and audit services:
the routes are pecflow.api's routers; this handler only wires and logs."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from pecflow import bootstrap
from pecflow.api import build_app
from pecflow.config import Config

config = Config.for_function(
    "inbox_table",
    "audit_table",
    "people_table",
    "messages_table",
    "outgoing_table",
    "send_queue_url",
    "archive_bucket",
    "downloads_bucket",
    "campaigns_table",
    "campaign_bucket",
    "api_secret",
    "fanout_queue_url",
)
logger = Logger()
app = build_app(bootstrap.api_services(config))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
