"""The whole local stack in one object: Dovecot, the simulated PEC providers, moto with
template.yaml's resources, and the event runner driving the real handlers, on one clock.

    with LocalStack.start() as stack:                      # or reuse running parts (tests)
        aruba = stack.network.add_provider(builder.ARUBA, quota=QUOTA_ARUBA)
        office = stack.add_company_mailbox(aruba, "ufficio@pec.azienda.test")
        ...
        stack.runner.advance(5 * 60)                        # the poll schedule fires, pollers run

`add_company_mailbox` makes a mailbox on the simulated provider and registers it in pecflow
exactly as `pecflow mailbox add` does (configuration in DynamoDB, password in Secrets Manager).
The deployment (endpoint and resource names) is written to .local-run/stack.json for the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from local.api_server import LocalApi
from local.aws import LocalAws
from local.clock import VirtualClock
from local.console import ConsoleServer
from local.imap import Account, Dovecot
from local.pec_provider import PecNetwork, SimulatedProvider
from local.runner import EventRunner
from local.sign_in import LocalUserPool
from local.tokens import TokenIssuer
from local.tsa import LocalTsa
from pecflow import bootstrap
from pecflow.adapters.trust import anchors_location, write_bundle
from pecflow.config import LOCAL_STATE, Config
from pecflow.domain.mailbox import MailboxConfig, SaturationPolicy
from pecflow.pec.signature import TrustAnchors

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"


@dataclass
class LocalStack:
    dovecot: Dovecot
    aws: LocalAws
    clock: VirtualClock
    network: PecNetwork
    runner: EventRunner
    owned: list = field(default_factory=list)  # what stop() must stop (parts not passed in)
    api: LocalApi | None = None  # the HTTP API on a local port, once served (serve_api)
    issuer: TokenIssuer | None = None  # its sign-in tokens
    user_pool: LocalUserPool | None = None  # sign-in with passwords, Cognito's protocol (local.sign_in)
    console: ConsoleServer | None = None  # the web console, once served (serve_console)
    tsa: LocalTsa | None = None  # the test time-stamping authority of evidence packs (TsaUrl)

    @classmethod
    def start(
        cls,
        *,
        dovecot: Dovecot | None = None,
        aws: LocalAws | None = None,
        clock: VirtualClock | None = None,
        start_time: datetime | None = None,
        state_file: Path | None = REPO / LOCAL_STATE,
        direct_calls: bool = False,
    ) -> LocalStack:
        """`direct_calls`: this process's boto3 calls skip the socket to the moto server the stack
        starts (LocalAws.start); not for a given `aws`, which has its own setting."""
        owned = []
        if dovecot is None:
            dovecot = Dovecot().start()
            owned.append(dovecot)
        if aws is None:
            aws = LocalAws.start(TEMPLATE, direct_calls=direct_calls)
            owned.append(aws)
        clock = clock or VirtualClock(start_time or datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
        network = PecNetwork(dovecot, clock=clock).start()
        tsa = LocalTsa().start()  # `openssl ts -reply`: the functions' TSA_URL, read by the runner
        owned.append(tsa)
        aws.parameters["TsaUrl"] = tsa.url
        runner = EventRunner(TEMPLATE, aws, clock)
        stack = cls(dovecot, aws, clock, network, runner, owned, tsa=tsa)
        if state_file is not None:
            stack.deployment().write(state_file)
        return stack

    def trust_simulated_providers(self) -> None:
        """Make the simulated providers' CA the stack's trust anchor, as `pecflow trust import`
        does: their signatures are then `valid` in pollers started afterwards (without it they
        are `untrusted`, and say so). Not done by `start`: the bundle is an object in the archive
        bucket, which some checks count."""
        config = self.deployment()
        location = anchors_location(config.trust_anchors, config.archive_bucket)
        write_bundle(location, TrustAnchors([self.network.autorita.certificato]), config.client("s3"))

    def trust_local_tsa(self) -> None:
        """The local TSA's CA where the stack's functions read the TSA's certificates
        (trust/tsa.pem in the archive bucket): its stamps are then checked as a pack is built,
        and the CA copied into the packs. Not done by `start`, as `trust_simulated_providers`."""
        assert self.tsa is not None
        config = self.deployment()
        write_bundle(config.tsa_anchors, TrustAnchors.read(self.tsa.anchors_pem), config.client("s3"))

    def deployment(self) -> Config:
        aws = self.aws
        return Config(
            stack_name=aws.stack_name,
            region=aws.region,
            endpoint_url=aws.endpoint_url,
            mailboxes_table=aws.physical("MailboxesTable"),
            messages_table=aws.physical("MessagesTable"),
            outgoing_table=aws.physical("OutgoingTable"),
            campaigns_table=aws.physical("CampaignsTable"),
            audit_table=aws.physical("AuditTable"),
            people_table=aws.physical("PeopleTable"),
            user_pool_id=aws.physical("UserPool"),
            api_secret=aws.physical("ApiSecret"),
            inbox_table=aws.physical("InboxTable"),
            invoices_table=aws.physical("InvoicesTable"),
            archive_bucket=aws.physical("ArchiveBucket"),
            poll_queue_url=aws.url("PollQueue"),
            campaign_bucket=aws.physical("CampaignBucket"),
            send_queue_url=aws.url("SendQueue"),
            downloads_bucket=aws.physical("DownloadsBucket"),
            tsa_url=self.tsa.url if self.tsa is not None else "",
            tsa_anchors=f"s3://{aws.physical('ArchiveBucket')}/trust/tsa.pem",
            alerts_table=aws.physical("AlertsTable"),
            alerts_topic=aws.arn("AlarmsTopic"),
            alerts_webhook_secret=aws.arn("AlertsWebhookSecret"),
        )

    def add_company_mailbox(
        self,
        provider: SimulatedProvider,
        address: str | None = None,
        *,
        saturation: SaturationPolicy | None = None,
        quota: str | None = None,
        password: str | None = None,
        register: bool = True,
        quota_preset: str | None = None,
    ) -> Account:
        """A mailbox on the simulated provider, registered in pecflow like `pecflow mailbox add`."""
        account = (
            provider.add_mailbox(address, quota=quota)
            if address
            else provider.fresh_mailbox("ufficio", quota=quota)
        )
        if register:
            config = self.mailbox_config(account.address, provider)
            if saturation is not None:
                config = MailboxConfig(**{**_fields(config), "saturation": saturation})
            if quota_preset is not None:
                config = MailboxConfig(**{**_fields(config), "quota_preset": quota_preset}).validate()
            bootstrap.mailbox_admin(self.deployment()).add(config, password or account.password, check=True)
        return account

    def mailbox_config(self, address: str, provider: SimulatedProvider | None = None) -> MailboxConfig:
        """How pecflow reaches a simulated mailbox: IMAP on Dovecot, SMTPS on its provider."""
        smtp = {"smtp_host": provider.host, "smtp_port": provider.port} if provider is not None else {}
        return MailboxConfig(
            address=address,
            imap_host=self.dovecot.host,
            imap_port=self.dovecot.port,
            ca_bundle=self.dovecot.ca.pem.decode("ascii"),
            **smtp,
        ).validate()

    def serve_api(self, port: int = 0) -> LocalApi:
        """The `api` function behind a local port, each request's token checked as API Gateway's
        JWT authorizer checks it (against `issuer`, local.tokens), given as an HTTP API event to
        the handler through the runner (its own environment, the stack's clock)."""
        if self.api is None:
            self.issuer = TokenIssuer()

            def handler(event: dict, context: object) -> dict:
                invocation = self.runner.invoke("ApiFunction", event)
                if invocation.error:
                    raise RuntimeError(invocation.error)
                return invocation.result

            self.api = LocalApi(handler, self.issuer, port=port).start()
            self.owned.append(self.api)
        return self.api

    def sign_in(self, mfa: str | None = None) -> LocalUserPool:
        """The local user pool: people sign in with a password (and a TOTP code once enrolled;
        `mfa="required"` makes everyone enrol, "optional" is the default), in Cognito's JSON
        protocol; the issuer's tokens."""
        if self.user_pool is None:
            self.serve_api()
            assert self.issuer is not None
            self.user_pool = LocalUserPool(self.issuer, mfa=mfa or "optional")
        elif mfa is not None:
            self.user_pool.set_mfa(mfa)
        return self.user_pool

    def serve_console(self, port: int = 0) -> ConsoleServer:
        """The web console (console/dist, `make console`) on a local port, with its config.json
        naming the local API and its sign-in endpoint; its URL is `.url`."""
        if self.console is None:
            api = self.serve_api()
            self.console = ConsoleServer(api.url, self.sign_in(), port=port).start()
            self.owned.append(self.console)
        return self.console

    def add_person(
        self,
        username: str,
        email: str,
        name: str = "",
        roles: dict[str, str] | None = None,
        *,
        password: str | None = None,
    ) -> str:
        """A person with their roles, as `pecflow users add` makes them; their sign-in token.
        With a password they can also sign in to the console (sign_in())."""
        from pecflow.domain.access import Role

        people = bootstrap.people_admin(self.deployment())
        people.add("local-stack", username, email, name)
        for mailbox, role in (roles or {}).items():
            people.set_role("local-stack", username, mailbox, Role(role))
        if self.issuer is None:
            self.serve_api()
        assert self.issuer is not None
        if password is not None:
            self.sign_in().add(username, password)
        return self.issuer.issue(username)

    def stop(self) -> None:
        self.runner.stop()
        self.network.stop()
        for part in reversed(self.owned):
            part.stop()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _fields(config: MailboxConfig) -> dict:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}
