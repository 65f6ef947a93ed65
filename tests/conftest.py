"""Shared test configuration.

Real PEC samples are third-party data: they are never copied into the repository.
Tests read them from `../shared/fixtures/` beside the repository when it exists
(CI has it) and skip otherwise. PECFLOW_FIXTURES overrides the location.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

# the fault matrix's table (tests/reliability): printed where the test reports arrive
from tests.reliability.table import pytest_runtest_logreport, pytest_terminal_summary  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("PECFLOW_FIXTURES", REPO.parent / "shared" / "fixtures"))

# No test reaches AWS: fake credentials and a fixed region before any client exists.
for _name, _value in {
    "AWS_DEFAULT_REGION": "eu-south-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_PROFILE", None)


def real_fixtures(subdir: str) -> Path:
    """The folder of real samples, or skip the test when the founders' kit is absent."""
    path = FIXTURES / subdir
    if not path.is_dir():
        pytest.skip(f"real PEC samples not available ({path} missing)")
    return path


def real_pec_labels() -> list[dict]:
    return json.loads((real_fixtures("pec") / "labels.json").read_text(encoding="utf-8"))


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = str(item.fspath)
        for layer in ("unit", "integration", "e2e"):
            if f"{os.sep}tests{os.sep}{layer}{os.sep}" in path:
                item.add_marker(getattr(pytest.mark, layer))
    # The tests that declare minutes of work (a timeout above the default) start first, longest
    # first: the parallel workers then share out the short ones and finish together, instead
    # of one worker starting a five-minute test when the others are nearly done. Among equal
    # timeouts, and among the default's, the ones CI measured long go first.
    default = float(config.getini("timeout") or 0)
    items.sort(key=lambda item: (-max(_declared_timeout(item), default), -_measured_seconds(item)))
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    if workers > 1:
        items[:] = _one_long_test_per_worker(items, workers, default)


# Seconds CI measured (`make test`'s --durations, 2 workers), for the order above: a timeout says
# how long a test may take, not how long it takes. Tests not listed take a few seconds at most.
# (a clean-clone ./.ci/run of 2026-11-27 on an idle machine: 305 s of pytest in all)
_MEASURED_SECONDS = {
    "tests/e2e/test_campaigns.py::test_a_500_row_campaign_ends_with_statistics_matching_the_script": 73,
    "tests/e2e/test_ingestion.py::test_a_thousand_messages_each_archived_recorded_classified_and_reconciled_once": 42,
    "tests/e2e/test_campaign_grouping.py::test_300_invoice_rows_for_120_customers_make_120_pec_and_a_test_reaches_only_its_address": 24,
    "tests/e2e/test_demo.py::test_the_demo_plays_the_day_and_its_figures_match_the_simulator": 14,
    "tests/browser/test_console_campaign.py::test_a_campaign_made_in_the_wizard_fixed_after_its_report_and_followed_to_its_numbers": 22,
    "tests/integration/test_cli_install.py::test_the_installed_command": 12,  # its module's setup
    "tests/browser/test_console_inbox.py::test_two_operators_and_a_viewer_work_one_message_in_the_console": 16,
    "tests/unit/test_campaign_grouping.py::test_a_million_rows_are_grouped_in_constant_memory": 13,
    "tests/browser/test_console_admin.py::test_an_admin_manages_people_and_reads_mailbox_health_a_non_admin_sees_nothing": 10,
}


def _measured_seconds(item) -> float:
    return _MEASURED_SECONDS.get(item.nodeid.split("[", 1)[0], 0)


def _declared_timeout(item) -> float:
    marker = item.get_closest_marker("timeout")
    return float(marker.args[0] if marker.args else marker.kwargs.get("timeout", 0)) if marker else 0.0


def pytest_configure(config):
    # pytest-xdist's `--dist load` hands each worker a quarter of its share of the tests at once,
    # in collection order: the long tests sorted first would all go to the first worker. One
    # test at a time instead (each worker holds two: the one it runs and the next).
    if getattr(config.option, "dist", "no") == "load" and getattr(config.option, "maxschedchunk", 0) is None:
        config.option.maxschedchunk = 1


def _one_long_test_per_worker(items: list, workers: int, default: float) -> list:
    """The order `--dist load` (one test at a time) needs to start the longest tests on different
    workers: worker k starts with the tests at 2k and 2k + 1. The `workers` longest go first to
    each (the even places), the next ones behind them in reverse (the odd places): the worker
    with the longest test gets the shortest of the second round."""
    long = [item for item in items if _declared_timeout(item) > default][: 2 * workers]
    if len(long) < 2:
        return items
    first, second = long[:workers], long[workers:][::-1]
    rest = [item for item in items if item not in long]
    # a worker without a second long test waits with a short one there
    second = [*(rest.pop() for _ in range(len(first) - len(second))), *second]
    head = [item for pair in zip(first, second, strict=True) for item in pair]
    return head + rest


@pytest.fixture(scope="session")
def signer():
    """(certificate, private key) of a test signer, for p7m and S/MIME signatures in tests."""
    from local.pecbuild import builder

    firma = builder.Firma.per(builder.SIMULATO)
    return firma.certificato, firma.chiave


@pytest.fixture(scope="session")
def dovecot():
    """One real IMAP server (Dovecot) for the session; tests isolate themselves with fresh users."""
    from local.imap import INSTALL_HINT, Dovecot, dovecot_binary

    if dovecot_binary() is None:
        pytest.fail(INSTALL_HINT)
    # its mail in memory when the machine has a tmpfs: the thousands of small files a long test
    # writes are created (and removed at the end) without waiting on the disk
    memory = Path("/dev/shm")
    workdir = Path(tempfile.mkdtemp(prefix="pecflow-dovecot-", dir=memory)) if memory.is_dir() else None
    server = Dovecot(workdir).start()
    try:
        yield server
    finally:
        server.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


# --- nothing the suite starts may outlive it --------------------------------------------------


def _our_servers() -> list[str]:
    """Servers this test process started that still run (Dovecot masters are its children;
    other processes, such as a parallel test worker's, are not ours to judge)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        if parent == os.getpid() and "dovecot" in cmdline:
            found.append(f"{pid}: {cmdline.strip()}")
    return found


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    before = set(_our_servers())
    yield
    left = [p for p in _our_servers() if p not in before]
    assert not left, f"the test suite left processes running: {left}"
    stray = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    assert not stray, f"the test suite left threads running: {stray}"


# --- no password in any log line -----------------------------------------------------------------
# Every log record of the whole suite (any logger, Powertools' too: they all pass Logger.handle) is
# scanned for the passwords the suite uses: the fixed ones below, and each one the code writes to
# or reads from a secret (pecflow.adapters.secrets) or gives a test IMAP account. A password in a
# log line, its extra fields included, fails the session.
SECRETS: set[str] = {"segreta", "Carla-pw-2026", "Otto-pw-2026", "Paolo-pw-1"}
_LEAKS: list[str] = []
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def register_secret(value: object) -> None:
    if isinstance(value, str) and len(value) >= 7:
        SECRETS.add(value)


def _texts(record: logging.LogRecord) -> list[str]:
    try:
        texts = [record.getMessage()]
    except Exception:  # noqa: BLE001 - a record whose arguments do not fit: its parts
        texts = [str(record.msg), str(record.args)]
    texts += [str(v) for k, v in vars(record).items() if k not in _RECORD_FIELDS]
    if record.exc_info and record.exc_info[1] is not None:
        texts.append(str(record.exc_info[1]))
    return texts


_handle = logging.Logger.handle


def _scanned_handle(self: logging.Logger, record: logging.LogRecord) -> None:
    for text in _texts(record):
        for secret in SECRETS:
            if secret in text:
                _LEAKS.append(f"{record.name} {record.levelname}: {text[:300]!r} holds a test password")
    _handle(self, record)


logging.Logger.handle = _scanned_handle  # type: ignore[method-assign]


def _registering(function):
    def wrapper(*args, **kwargs):
        result = function(*args, **kwargs)
        for value in (*args, result):
            register_secret(value)
        return result

    return wrapper


def _register_secret_sources() -> None:
    from local import demo, imap
    from pecflow.adapters import secrets

    secrets.password_from_secret = _registering(secrets.password_from_secret)
    secrets.secret_value = _registering(secrets.secret_value)
    add_user = imap.Dovecot.add_user

    def registering_add_user(self, address, password=None, **kwargs):
        account = add_user(self, address, password, **kwargs)
        register_secret(account.password)
        return account

    imap.Dovecot.add_user = registering_add_user  # type: ignore[method-assign]
    for password in demo.DEMO_PASSWORDS.values():
        register_secret(password)


_register_secret_sources()


@pytest.fixture(scope="session", autouse=True)
def no_password_in_the_logs():
    yield
    assert not _LEAKS, "passwords in log lines:\n" + "\n".join(_LEAKS[:20])


# --- AWS: one moto server per session with template.yaml's resources (local/aws.py) ------------
# `local_aws` gives each test fresh resources and points boto3 in this process at the server for
# the test only. Drive handlers with `local.runner.EventRunner(template, local_aws, clock)`.


@pytest.fixture(scope="session")
def local_aws_session():
    from pathlib import Path

    from local.aws import LocalAws

    # this process's boto3 calls go to moto's application without the socket (local/aws.py,
    # _direct_calls); the browser tests' pages still reach the server over HTTP
    aws = LocalAws.start(
        Path(__file__).resolve().parents[1] / "template.yaml", set_environ=False, direct_calls=True
    )
    yield aws
    aws.stop()


@pytest.fixture
def local_aws(local_aws_session):
    local_aws_session.reset()
    with local_aws_session.environ():
        yield local_aws_session


# --- end AWS -------------------------------------------------------------------------------------


# --- the whole stack (local/stack.py): session Dovecot and moto, a fresh network and runner per test --
@pytest.fixture
def stack(dovecot, local_aws):
    from local.stack import LocalStack

    stack = LocalStack.start(dovecot=dovecot, aws=local_aws, state_file=None)
    yield stack
    stack.stop()


# --- end stack -------------------------------------------------------------------------------------
