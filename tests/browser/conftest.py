"""The web console in a real browser: Playwright driving Debian's Chromium headless (never
`playwright install`: no network but the package registries) against the local stack, with the
console built by `make console` (console/dist) and served by it.

Every screen a test visits is photographed into .local-run/screenshots/ (not committed: a reviewer
looks at them there) and checked by axe-core (console/node_modules/axe-core, a devDependency of
the console): no serious or critical violation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DIST = REPO / "console" / "dist"
AXE = REPO / "console" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / ".local-run" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: `apt-get install chromium` (make test installs it)")
    from playwright.sync_api import expect, sync_playwright

    # a screen waits for the API; on a shared machine a function's first call (its cold start)
    # can take longer than Playwright's 5 s default: this is a bound, not a speed target
    expect.set_options(timeout=15_000)
    missing = [str(p.relative_to(REPO)) for p in (DIST / "index.html", AXE) if not p.is_file()]
    if missing:
        pytest.fail(f"the console is not built ({', '.join(missing)} missing): run `make console`")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


# the local stack: `stack` (and its moto server, Dovecot) from tests/conftest.py, as the e2e tests use it


class Screens:
    """Photographs and axe-checks each screen: `screens.check(page, "inbox")`."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.taken: list[Path] = []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for old in SCREENSHOTS.glob(f"{prefix}-*.png"):
            old.unlink()

    def check(self, page, name: str) -> list[dict]:
        page.wait_for_load_state("networkidle")
        path = SCREENSHOTS / f"{self.prefix}-{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        if not page.evaluate("() => typeof window.axe !== 'undefined'"):
            page.add_script_tag(path=str(AXE))
        violations = page.evaluate(
            """async () => {
                const found = await window.axe.run(document, {resultTypes: ['violations']});
                return found.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                    where: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
            }"""
        )
        grave = [v for v in violations if v["impact"] in ("serious", "critical")]
        assert not grave, f"axe-core on the {name} screen ({path.name}): {grave}"
        return violations


@pytest.fixture
def screens(request):
    return Screens(re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40])
