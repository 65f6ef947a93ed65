"""The README's workstation install: a fresh venv, `pip install './shared[cli]'`, then the `pecflow`
command it gives, in its own process and away from this repository: `campaign validate` on a campaign
folder, `mailbox list` with no AWS configuration and against moto (a server)."""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from local.demo import excel_csv
from pecflow.domain.campaign.pdf import text_pdf

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
# pip's words when no package index answers: then the install cannot be tried here
UNREACHABLE = (
    "Temporary failure in name resolution",
    "Network is unreachable",
    "NewConnectionError",
    "Max retries exceeded",
    "No matching distribution found",
    "Could not find a version that satisfies",
)


@pytest.fixture(scope="module")
def workstation(tmp_path_factory):
    """(pecflow command, environment with no AWS configuration and no repository on the path)."""
    root = tmp_path_factory.mktemp("workstation")
    source = root / "shared"
    shutil.copytree(
        REPO / "shared", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    venv.create(root / "venv", with_pip=True)  # the Python running the tests: 3.12 under make
    # HOME kept: pip's cache and configuration (mirrors) are the user's
    env = {"PATH": f"{root / 'venv/bin'}:/usr/bin:/bin", "HOME": os.environ["HOME"], "LANG": "C.UTF-8"}
    for name in ("PIP_CONFIG_FILE", "PIP_FIND_LINKS", "PIP_CERT", "SSL_CERT_FILE", "XDG_CONFIG_DIRS"):
        if name in os.environ:
            env[name] = os.environ[name]
    install = subprocess.run(
        [root / "venv/bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        + ["--timeout", "20", "--retries", "1", f"{source}[cli]"],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=240,
    )
    if install.returncode and any(words in install.stderr for words in UNREACHABLE):
        pytest.skip(f"no package index reachable for pip install './shared[cli]': {install.stderr[-300:]}")
    assert install.returncode == 0, install.stderr
    return root / "venv/bin/pecflow", env


def pecflow(workstation, *args, env=None, cwd=None):
    command, base = workstation
    done = subprocess.run(
        [command, *map(str, args)],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd or command.parent,
        timeout=60,
    )
    assert "ModuleNotFoundError" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    return done


def campaign_validate_on_a_campaign_folder(workstation, tmp_path):
    folder = tmp_path / "solleciti-marzo"
    (folder / "attachments").mkdir(parents=True)
    rows = [
        {
            "PEC": f"cliente{i}@pec.clienti.test",
            "Ragione Sociale": f"Cliente {i} S.r.l.",
            "Allegato": f"avviso-{i}.pdf",
        }
        for i in (1, 2)
    ]
    for row in rows:
        (folder / "attachments" / row["Allegato"]).write_bytes(
            text_pdf(f"Avviso per {row['Ragione Sociale']}")
        )
    (folder / "recipients.csv").write_bytes(excel_csv(rows))
    (folder / "manifest.json").write_text(
        '{"mailbox": "ufficio@pec.azienda.test", "subject": "Sollecito – {{ ragione_sociale }}",'
        ' "body_text": "Gentile {{ ragione_sociale }},\\nin allegato l\'avviso.\\n",'
        ' "attachment_column": "allegato"}'
    )
    args = [
        "campaign",
        "validate",
        "--manifest",
        folder / "manifest.json",
        "--csv",
        folder / "recipients.csv",
    ]

    done = pecflow(workstation, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VALID: 2 recipients ready" in done.stdout
    assert (folder / "recipients.validation.json").is_file()

    rows.append({"PEC": "non-un-indirizzo", "Ragione Sociale": "Tre", "Allegato": "manca.pdf"})
    (folder / "recipients.csv").write_bytes(excel_csv(rows))
    done = pecflow(workstation, *args)
    assert done.returncode == 1 and "INVALID" in done.stdout, done.stdout + done.stderr
    assert "1 row(s) with errors" in done.stdout


def mailbox_list_with_no_aws_configuration_says_what_to_give(workstation):
    done = pecflow(workstation, "mailbox", "list")
    assert done.returncode == 2
    assert "say where pecflow runs: --stack NAME, --local, or MAILBOXES_TABLE" in done.stderr


def mailbox_list_against_moto(workstation):
    from local.aws import LocalAws
    from pecflow.adapters.dynamodb import MailboxStore
    from pecflow.domain.mailbox import MailboxConfig

    with LocalAws.start(TEMPLATE, stack_name="pecflow-cli-install", set_environ=False) as aws:
        table = aws.physical("MailboxesTable")
        MailboxStore(table, aws.resource("dynamodb")).put(
            MailboxConfig("ufficio@pec.azienda.test", "imaps.pec.azienda.test")
        )
        env = {**aws.environment(), "MAILBOXES_TABLE": table, "STACK_NAME": aws.stack_name}
        done = pecflow(workstation, "mailbox", "list", env=env)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("ufficio@pec.azienda.test"))
    assert "imaps.pec.azienda.test:993" in line and "never polled" in line


def test_the_installed_command(workstation, tmp_path):
    """One test for the one install (a pip install takes about a minute: the parts share it
    whichever xdist worker runs them)."""
    campaign_validate_on_a_campaign_folder(workstation, tmp_path)
    mailbox_list_with_no_aws_configuration_says_what_to_give(workstation)
    mailbox_list_against_moto(workstation)
