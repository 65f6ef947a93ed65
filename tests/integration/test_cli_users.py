"""`pecflow users` against moto: people and roles in the people table, sign-in accounts in a
Cognito user pool, every change in the audit log."""

from __future__ import annotations

import json

import pytest

from pecflow import cli
from pecflow.adapters.cognito import CognitoDirectory
from pecflow.adapters.dynamodb.audit import AuditStore
from pecflow.services.audit import AuditLog

BOX = "ufficio@pec.alfa.test"


@pytest.fixture
def env(aws, monkeypatch):
    for name, logical in (
        ("MAILBOXES_TABLE", "MailboxesTable"),
        ("PEOPLE_TABLE", "PeopleTable"),
        ("AUDIT_TABLE", "AuditTable"),
    ):
        monkeypatch.setenv(name, aws.physical(logical))
    monkeypatch.setenv("STACK_NAME", "pecflow-test")
    pool = aws.client("cognito-idp").create_user_pool(PoolName="pecflow-test")["UserPool"]["Id"]
    monkeypatch.setenv("USER_POOL_ID", pool)
    return aws, pool


def run(capsys, *argv):
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse refusing the command line
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_add_list_grant_disable(env, capsys):
    aws, pool = env
    code, out, _ = run(capsys, "users", "add", "anna", "--email", "Anna@Alfa.test", "--name", "Anna Rossi",
                       "--role", f"{BOX}=operator")  # fmt: skip
    assert code == 0 and "anna" in out and f"{BOX} operator" in out
    assert "invitation with a temporary password was sent to anna@alfa.test" in out
    directory = CognitoDirectory(pool, aws.client("cognito-idp"))
    assert directory.enabled("anna") is True

    code, _, err = run(capsys, "users", "add", "anna", "--email", "altra@alfa.test")
    assert code == 1 and "already a person called anna" in err
    code, _, err = run(capsys, "users", "add", "bruno", "--email", "bruno@alfa.test", "--role", f"{BOX}=capo")
    assert code == 2 and "a role is one of viewer, operator, manager, admin" in err

    assert run(capsys, "users", "grant", "anna", BOX, "manager")[0] == 0
    code, out, _ = run(capsys, "users", "list", "--mailbox", BOX, "--json")
    (listed,) = [json.loads(line) for line in out.splitlines()]
    assert listed == {"username": "anna", "email": "anna@alfa.test", "name": "Anna Rossi", "enabled": True,
                      "roles": {BOX: "manager"}}  # fmt: skip

    code, out, _ = run(capsys, "users", "disable", "anna")
    assert code == 0 and "[disabled]" in out and directory.enabled("anna") is False
    assert run(capsys, "users", "revoke", "anna", BOX)[0] == 0
    code, out, _ = run(capsys, "users", "list")
    assert "no mailbox" in out and "1 person(s)" in out

    log = AuditLog(AuditStore(aws.physical("AuditTable"), aws.resource("dynamodb")))
    assert [e.details["to"] for e in log.store.events(BOX)] == ["operator", "manager", "none"]
    assert [e.details["change"] for e in log.store.events("#people")] == ["added", "disabled"]
    assert log.verify(BOX).ok and log.verify("#people").ok
    code, _, err = run(capsys, "users", "disable", "zeno")
    assert code == 1 and "no person called zeno" in err
