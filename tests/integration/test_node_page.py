"""The node's web page in a real headless Chromium, against a real ``finvault node`` on anvil.

The browser is Debian's ``/usr/bin/chromium`` driven by Playwright (never a downloaded one). Each
test loads receipts the way a person would (file chooser, paste, drag and drop, verification
link), waits for the verdict banner, checks what the page says in the DOM, and keeps a screenshot
in ``tmp_path``. Every page also runs under the node's Content-Security-Policy, and a test fails if
the browser reports a violation or a script error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from chain.core.receipt import Receipt, ReceiptV2, build_receipt, parse_receipt
from chain.core.sd_jwt import parse_sd_jwt, process_credential, withhold
from chain.core.secured import DATA_INTEGRITY
from chain.core.verify import CheckName
from chain.dev.devchain import DevChain
from chain.registry import RevocationReason
from chain.rpc import RpcClient
from issuer.ob3 import ob3_template
from tests.factories import credential
from tests.integration.conftest import BROWSER_TIMEOUT_MS, Deployed
from tests.integration.node_fixtures import (
    FINALITY_DEPTH,
    Issued,
    issue,
    issue_v2,
    register_issuer,
    start_node,
    verdict_when,
    wait_for,
)
from tests.tools.node_process import NodeProcess

pytestmark = pytest.mark.timeout(240)

STATIC = Path(__file__).resolve().parents[2] / "node" / "static"
#: A full-page PNG of the verdict is tens of kilobytes; a blank or broken one is far smaller.
MIN_SCREENSHOT_BYTES = 15_000
HIDDEN_POINTER = "/credentialSubject/grade"
#: Banner backgrounds from style.css: proof that the stylesheet loaded under the CSP.
GREEN, AMBER, RED = "rgb(218, 251, 225)", "rgb(255, 244, 209)", "rgb(255, 227, 227)"


# -- fixtures ---------------------------------------------------------------------------------------


@dataclass
class Scene:
    """A node that holds a final batch (receipt 1 revoked, the rest valid) and a batch anchored
    since, which is not final yet."""

    node: NodeProcess
    issued: Issued
    revoked_in: int
    pending: Receipt
    problems: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.node.url


@pytest.fixture
def scene(anvil: DevChain, registry: Deployed, rpc: RpcClient, tmp_path: Path) -> Iterator[Scene]:
    issued = issue(registry.owner, registry.issuer, seed="page")
    tree = issued.batch.tree
    revoked = issued.writer.revoke_leaf(
        issued.leaf(1), tree.root, tree.proof(issued.leaf(1)), RevocationReason.SUPERSEDED
    )
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    pending = issue(registry.owner, registry.issuer, size=1, seed="page-later", register=False).receipts[0]
    with start_node(anvil.rpc_url, issued.registry, tmp_path) as node:
        with httpx.Client(base_url=node.url, timeout=30) as client:
            # The page is tested once the mirror holds the facts, so a verdict never races the sync.
            verdict_when(client, issued.receipts[0], "VALID")
            verdict_when(client, issued.receipts[1], "REVOKED")
            verdict_when(client, pending, "PENDING")
        yield Scene(node, issued, revoked.block_number, pending)


@pytest.fixture
def page(browser: Browser, scene: Scene) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=scene.url)
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    opened = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":  # CSP violations are reported here
            scene.problems.append(message.text)

    opened.on("console", on_console)
    opened.on("pageerror", lambda error: scene.problems.append(f"script error: {error}"))
    try:
        yield opened
    finally:
        context.close()


# -- helpers ----------------------------------------------------------------------------------------


def hide(receipt: Receipt, *pointers: str) -> Receipt:
    """The same receipt with ``pointers`` hidden by the holder (selective disclosure)."""
    return build_receipt(
        receipt.document.disclose(pointers),
        signature=receipt.signature,
        proof=receipt.proof,
        anchor=receipt.anchor,
        link=receipt.link,
    )


def open_page(page: Page, path: str = "/") -> None:
    response = page.goto(path)
    assert response is not None
    assert response.status == 200
    expect(page.locator("html")).to_have_attribute("data-ready", "true")


def choose_file(page: Page, path: Path) -> None:
    page.locator("#file-input").set_input_files(str(path))


def paste(page: Page, text: str) -> None:
    page.locator("#paste").fill(text)
    page.get_by_role("button", name="Verify pasted receipt").click()


def drop(page: Page, name: str, text: str) -> None:
    """A real drop event carrying a file, as a file manager's drag would deliver it."""
    transfer = page.evaluate_handle(
        """([name, text]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([text], name, { type: "application/json" }));
            return transfer;
        }""",
        [name, text],
    )
    page.locator("#dropzone").dispatch_event("drop", {"dataTransfer": transfer})


def banner_says(page: Page, status: str) -> None:
    banner = page.get_by_role("status")
    expect(banner).to_have_attribute("data-status", status)
    expect(page.locator("#banner-status")).to_have_text(status)


def fact(page: Page, key: str) -> str:
    return page.locator(f'dd[data-fact="{key}"]').inner_text()


def check_row(page: Page, name: CheckName) -> dict[str, str]:
    row = page.locator(f'#checks tr[data-check="{name}"]')
    cells = row.locator("th, td").all_inner_texts()
    return {"outcome": row.get_attribute("data-outcome") or "", "code": cells[2], "detail": cells[3]}


def background(page: Page, selector: str) -> str:
    value: str = page.locator(selector).evaluate("node => getComputedStyle(node).backgroundColor")
    return value


def screenshot(page: Page, path: Path) -> Path:
    page.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > MIN_SCREENSHOT_BYTES, f"{path.name} is only {len(data)} bytes"
    return path


def assert_no_problems(scene: Scene, *, expected: str | None = None) -> None:
    """No CSP violation, script error or failed load, except one ``expected`` failed request."""
    problems = [p for p in scene.problems if expected is None or expected not in p]
    assert problems == [], "the browser reported errors (CSP violations?)"


# -- tests ------------------------------------------------------------------------------------------


@pytest.mark.slow(seconds=3)
def test_valid_receipt_from_the_file_chooser(page: Page, scene: Scene, tmp_path: Path) -> None:
    receipt = hide(scene.issued.receipts[0], HIDDEN_POINTER)
    path = tmp_path / "certificate.json"
    path.write_text(receipt.to_json())

    open_page(page)
    expect(page.locator("#link-prompt")).to_be_hidden()
    expect(page.get_by_label("Choose a receipt file")).to_be_attached()
    expect(page.get_by_label("Or paste the receipt's JSON")).to_be_visible()
    choose_file(page, path)

    banner_says(page, "VALID")
    expect(page.locator("#banner-summary")).to_contain_text("issued by Example University")
    assert background(page, "#banner") == GREEN
    assert fact(page, "issuer-name") == "Example University"
    assert fact(page, "issuer-address") == scene.issued.issuer
    assert fact(page, "issuer-active") == "yes"
    assert fact(page, "valid-from") == "2026-06-30T00:00:00Z"
    assert fact(page, "tx-hash") == scene.issued.tx_hash
    assert fact(page, "block-number") == str(scene.issued.block)
    assert int(fact(page, "confirmations")) >= FINALITY_DEPTH
    assert fact(page, "finality").startswith("final")
    assert fact(page, "revoked") == "not revoked"
    assert page.locator("#checks tbody tr").count() == len(CheckName)
    for name in CheckName:
        if name is CheckName.DATA_INTEGRITY:  # a field is withheld: the W3C proof cannot hold
            assert check_row(page, name)["outcome"] == "skip"
            assert check_row(page, name)["detail"].startswith("not applicable: fields withheld by the holder")
        else:
            assert check_row(page, name)["outcome"] == "pass", name

    disclosed = page.locator('#fields tr[data-pointer="/credentialSubject/name"] td')
    expect(disclosed).to_have_text("Student 0")
    expect(page.locator('#fields tr[data-pointer="/credentialSubject/credits"] td')).to_have_text("120")
    expect(page.locator(f'#fields tr[data-pointer="{HIDDEN_POINTER}"]')).to_have_count(0)
    expect(page.locator("#fields-note")).to_contain_text("matches the digest the issuer signed")
    expect(page.locator("#result-note")).to_be_hidden()
    expect(page.locator("#hidden-summary")).to_have_attribute("data-count", "1")
    expect(page.locator("#hidden-list li")).to_have_text(list(receipt.obfuscated))

    screenshot(page, tmp_path / "valid.png")
    assert_no_problems(scene)


@pytest.mark.slow
def test_revoked_receipt_pasted(page: Page, scene: Scene, tmp_path: Path) -> None:
    open_page(page)
    paste(page, scene.issued.receipts[1].to_json())

    banner_says(page, "REVOKED")
    expect(page.locator("#banner-summary")).to_contain_text("Revoked: superseded (code 4)")
    assert background(page, "#banner") == RED
    assert fact(page, "revoked") == "revoked"
    assert fact(page, "revocation-reason") == "superseded (code 4)"
    assert fact(page, "revocation-scope") == "this certificate"
    assert fact(page, "revocation-block") == str(scene.revoked_in)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fact(page, "revoked-at"))
    assert check_row(page, CheckName.REVOCATION) == {
        "outcome": "fail",
        "code": "LEAF_REVOKED",
        "detail": "certificate revoked: superseded (4)",
    }
    assert fact(page, "issuer-name") == "Example University"

    screenshot(page, tmp_path / "revoked.png")
    assert_no_problems(scene)


@pytest.mark.slow
def test_pending_receipt_is_amber(page: Page, scene: Scene, tmp_path: Path) -> None:
    open_page(page)
    drop(page, "new.json", scene.pending.to_json())

    banner_says(page, "PENDING")
    expect(page.locator("#banner-summary")).to_contain_text("not final yet")
    assert background(page, "#banner") == AMBER
    assert fact(page, "finality").startswith("not final yet")
    finality = check_row(page, CheckName.FINALITY)
    assert (finality["outcome"], finality["code"]) == ("fail", "NOT_FINAL")
    screenshot(page, tmp_path / "pending.png")
    assert_no_problems(scene)


@pytest.mark.slow
def test_tampered_receipt_dropped(page: Page, scene: Scene, tmp_path: Path) -> None:
    genuine = scene.issued.receipts[2].to_json()
    tampered = genuine.replace('"Student 2"', '"Student 9"')
    assert tampered != genuine

    open_page(page)
    drop(page, "tampered.json", tampered)

    banner_says(page, "INVALID")
    expect(page.locator("#banner-summary")).to_contain_text("DIGEST_MISMATCH")
    assert background(page, "#banner") == RED
    digest = check_row(page, CheckName.DIGEST)
    assert (digest["outcome"], digest["code"]) == ("fail", "DIGEST_MISMATCH")
    expect(page.locator("#checks")).to_contain_text("DIGEST_MISMATCH")
    # The forged value is shown (it is what the file says) under a warning not to trust it.
    expect(page.locator('#fields tr[data-pointer="/credentialSubject/name"] td')).to_have_text("Student 9")
    expect(page.locator("#fields-note")).to_contain_text("do NOT match")
    expect(page.locator("#result-note")).to_contain_text("not proof of that certificate")
    screenshot(page, tmp_path / "tampered.png")

    paste(page, "this is not a receipt")  # the node refuses unreadable JSON: a red error, no details
    banner_says(page, "ERROR")
    expect(page.locator("#banner-summary")).to_contain_text("Could not verify")
    expect(page.locator("#result")).to_be_hidden()
    assert background(page, "#banner") == RED
    assert_no_problems(scene, expected="status of 400")


@pytest.mark.slow
def test_verification_link_asks_for_its_receipt(page: Page, scene: Scene, tmp_path: Path) -> None:
    linked, other = scene.issued.receipts[0], scene.issued.receipts[3]
    leaf = linked.proof.leaf

    open_page(page, f"/v/{leaf}")
    expect(page.locator("#link-prompt")).to_be_visible()
    expect(page.locator("#link-prompt")).to_have_text(
        re.compile(rf"Drop the receipt for certificate\s+{leaf}")
    )
    expect(page.get_by_role("status")).to_have_attribute("data-status", "idle")
    screenshot(page, tmp_path / "link.png")

    paste(page, other.to_json())  # the wrong certificate: verified, with a warning about the link
    banner_says(page, "VALID")
    warning = page.get_by_role("alert")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text(f"This receipt is for certificate {other.proof.leaf}, not {leaf}")
    screenshot(page, tmp_path / "link-mismatch.png")

    paste(page, linked.to_json())
    banner_says(page, "VALID")
    expect(page.locator("#leaf-warning")).to_be_hidden()
    assert_no_problems(scene)


@pytest.mark.slow
def test_a_node_that_cannot_vouch_says_so_and_never_shows_a_verdict(
    browser: Browser, anvil: DevChain, registry: Deployed, rpc: RpcClient, tmp_path: Path
) -> None:
    """A reorg past finality removes the anchor: the node halts, and the page (at the receipt's own
    verification link) shows why, with no green tick and no verdict details."""
    register_issuer(registry.owner, registry.issuer)
    before = rpc.call("evm_snapshot")
    issued = issue(registry.owner, registry.issuer, register=False, seed="page-halt")
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH + 36)])
    receipt = issued.receipts[0]
    with start_node(anvil.rpc_url, registry.address, tmp_path) as node:
        with httpx.Client(base_url=node.url, timeout=30) as client:
            verdict = verdict_when(client, receipt, "VALID")
        context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=node.url)
        context.set_default_timeout(BROWSER_TIMEOUT_MS)
        try:
            page = context.new_page()
            open_page(page, f"/v/{receipt.proof.leaf}")
            paste(page, receipt.to_json())
            banner_says(page, "VALID")
            expect(page.locator("#banner-as-of")).to_have_text(
                re.compile(rf"^Checked against block {verdict['as_of']['block_number']} \(0x[0-9a-f]{{64}}, ")
            )

            assert rpc.call("evm_revert", [before]) is True
            rpc.call("anvil_mine", [hex(FINALITY_DEPTH + 60)])
            with httpx.Client(base_url=node.url, timeout=30) as client:
                wait_for(
                    lambda: client.get("/status").json()["cannot_vouch"],
                    lambda problem: problem is not None and problem["code"] == "mirror_halted",
                    what="the node halted",
                )
            paste(page, receipt.to_json())
            banner = page.get_by_role("status")
            expect(banner).to_have_attribute("data-status", "UNVOUCHED")
            expect(page.locator("#banner-status")).to_have_text("This node cannot vouch right now")
            expect(page.locator("#banner-summary")).to_contain_text("reorg_beyond_finality")
            expect(page.locator("#banner-summary")).to_contain_text("mirror_halted")
            expect(page.locator("#banner-summary")).to_contain_text("finvault resync --from")
            expect(page.locator("#banner-as-of")).to_contain_text("This node's mirror is at block")
            expect(page.locator("#result")).to_be_hidden()  # no checks, no issuer, no tick
            assert background(page, "#banner") == AMBER
            assert "VALID" not in page.locator("#banner").inner_text()
            screenshot(page, tmp_path / "cannot-vouch.png")
        finally:
            context.close()


@pytest.mark.slow
def test_page_is_served_with_a_strict_policy(scene: Scene) -> None:
    leaf = scene.issued.receipts[0].proof.leaf
    with httpx.Client(base_url=scene.url, timeout=30) as client:
        for path in ("/", f"/v/{leaf}", "/static/index.html", "/static/app.js", "/static/style.css"):
            response = client.get(path)
            assert response.status_code == 200, path
            policy = response.headers["content-security-policy"]
            assert "default-src 'self'" in policy
            assert "script-src 'self'" in policy
            assert "unsafe-inline" not in policy
            assert "unsafe-eval" not in policy
            assert response.headers["x-content-type-options"] == "nosniff"
        assert client.get("/").headers["content-type"].startswith("text/html")
        assert client.get("/v/not-a-leaf").status_code == 422


def test_page_files_are_self_contained() -> None:
    html = (STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert not re.search(r"\sstyle=|<style", html), "inline style"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    for name in ("index.html", "app.js", "style.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text), f"{name} refers to another origin"
        assert "@import" not in text, name
        assert "url(" not in text, name
    script = (STATIC / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function("):
        assert sink not in script, f"app.js uses {sink}"


@pytest.mark.slow(seconds=4)
def test_share_less_withholds_fields_in_the_browser_and_the_node_accepts_the_result(
    page: Page, scene: Scene, tmp_path: Path
) -> None:
    """Open a legacy /1 receipt, untick fields to withhold, download the smaller receipt: it is
    computed in the page (no request carries it), and the node verifies the downloaded file VALID."""
    original = scene.issued.receipts[0]
    path = tmp_path / "certificate.json"
    path.write_text(original.to_json())
    open_page(page)
    choose_file(page, path)
    banner_says(page, "VALID")

    page.locator("#share summary").click()
    fields = page.locator("#share-fields label")
    assert fields.count() > 5
    expect(page.locator('#share-fields input[value="/type/0"]')).to_have_count(0)  # one array element
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))
    page.locator('#share-fields input[value="/credentialSubject/degree"]').uncheck()
    inside = page.locator('#share-fields input[value="/credentialSubject/degree/name"]')
    expect(inside).not_to_be_checked()  # it goes with the group it is in
    page.locator(f'#share-fields input[value="{HIDDEN_POINTER}"]').uncheck()
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download smaller receipt").click()
    downloaded = tmp_path / "shared.json"
    download_info.value.save_as(downloaded)
    expect(page.locator("#share-status")).to_contain_text("2 fields withheld; 3 withheld in all")
    assert [url for url in sent if not url.startswith("blob:")] == []  # nothing uploaded

    shared = parse_receipt(downloaded.read_bytes())
    assert isinstance(shared, Receipt)
    assert "grade" not in shared.credential["credentialSubject"]
    assert "degree" not in shared.credential["credentialSubject"]
    assert shared.credential["credentialSubject"]["name"] == "Student 0"
    assert shared == hide(original, "/credentialSubject/degree", HIDDEN_POINTER)  # as the core makes it
    with httpx.Client(base_url=scene.url, timeout=30) as client:
        headers = {"Content-Type": "application/json"}
        verdict = client.post("/verify", content=downloaded.read_bytes(), headers=headers).json()
    assert verdict["status"] == "VALID"
    digest = next(check for check in verdict["checks"] if check["name"] == "digest")
    assert "3 withheld by the holder" in digest["detail"]

    choose_file(page, downloaded)  # and the page shows it as such
    banner_says(page, "VALID")
    expect(page.locator("#hidden-summary")).to_contain_text("3 fields are withheld by the holder")
    screenshot(page, tmp_path / "shared.png")
    assert_no_problems(scene)


@pytest.mark.slow(seconds=5)
def test_share_less_on_an_sd_jwt_receipt_withholds_one_array_element(
    browser: Browser, anvil: DevChain, registry: Deployed, rpc: RpcClient, tmp_path: Path
) -> None:
    """A finvault-receipt/2 (SD-JWT) opened at its verification link: the page reconstructs and
    shows the disclosed credential, the holder unticks one course (an array element) and a group,
    and the smaller receipt (computed in the page: no request carries it) is exactly the core's
    withholding, which the node verifies VALID."""
    claims = []
    for i in range(2):
        claims.append(credential(f"Student {i}"))
        claims[-1]["credentialSubject"]["courses"] = ["Algebra", "Logic", "Compilers"]
    issued = issue_v2(registry.owner, registry.issuer, claims, seed="page-v2")
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    original = issued.receipts[0]
    assert isinstance(original.credential, str)
    path = tmp_path / "certificate.json"
    path.write_text(original.to_json())
    problems: list[str] = []
    with start_node(anvil.rpc_url, registry.address, tmp_path) as node:
        with httpx.Client(base_url=node.url, timeout=30) as client:
            leaf = verdict_when(client, original, "VALID")["evidence"]["leaf"]
        context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=node.url)
        context.set_default_timeout(BROWSER_TIMEOUT_MS)
        try:
            page = context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
            open_page(page, f"/v/{leaf}")
            choose_file(page, path)
            banner_says(page, "VALID")
            expect(page.locator("#leaf-warning")).to_be_hidden()  # the leaf recomputed is the link's
            course = '#fields tr[data-pointer="/credentialSubject/courses/{}"] td'
            expect(page.locator(course.format(1))).to_have_text("Logic")
            expect(page.locator('#fields tr[data-pointer="/credentialSubject/name"] td')).to_have_text(
                "Student 0"
            )
            expect(page.locator("#fields-note")).to_contain_text("what the issuer signed")

            page.locator("#share summary").click()
            element = page.locator('#share-fields input[value="/credentialSubject/courses/1"]')
            expect(element).to_be_checked()
            expect(page.locator('#share-fields input[value="/issuer"]')).to_have_count(0)  # always shown
            sent: list[str] = []
            page.on("request", lambda request: sent.append(request.url))
            element.uncheck()
            page.locator('#share-fields input[value="/credentialSubject/degree"]').uncheck()
            inside = page.locator('#share-fields input[value="/credentialSubject/degree/name"]')
            expect(inside).not_to_be_checked()  # it goes with the claim it is in
            with page.expect_download() as download_info:
                page.get_by_role("button", name="Download smaller receipt").click()
            downloaded = tmp_path / "shared.json"
            download_info.value.save_as(downloaded)
            expect(page.locator("#share-status")).to_contain_text("2 claims withheld")
            assert [url for url in sent if not url.startswith("blob:")] == []  # nothing uploaded

            shared = parse_receipt(downloaded.read_bytes())
            withheld = ["/credentialSubject/courses/1", "/credentialSubject/degree"]
            assert shared == original.model_copy(
                update={"credential": withhold(original.credential, pointers=withheld)}
            )
            assert isinstance(shared, ReceiptV2)
            assert isinstance(shared.credential, str)
            subject = process_credential(parse_sd_jwt(shared.credential))["credentialSubject"]
            assert subject["courses"] == ["Algebra", "Compilers"]
            assert "degree" not in subject
            with httpx.Client(base_url=node.url, timeout=30) as client:
                headers = {"Content-Type": "application/json"}
                verdict = client.post("/verify", content=downloaded.read_bytes(), headers=headers).json()
            assert verdict["status"] == "VALID", verdict
            assert verdict["evidence"]["leaf"] == leaf  # the same certificate

            choose_file(page, downloaded)  # and the page shows it as such
            banner_says(page, "VALID")
            expect(page.locator(course.format(1))).to_have_text("Compilers")
            expect(page.locator(course.format(2))).to_have_count(0)
            screenshot(page, tmp_path / "shared-v2.png")
        finally:
            context.close()
    assert problems == [], "the browser reported errors (CSP violations?)"


#: A 1x1 transparent PNG, carried inside the credential: the page may show it (nothing is fetched).
DATA_PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
#: An image somewhere else: the page names it and must never request it.
REMOTE_IMAGE = "https://images.uni.example/badges/python-101.png"


def open_badge(image: str) -> dict[str, Any]:
    """An Open Badge 3.0 from the built-in template, with an achievement image."""
    return ob3_template().fill(
        {
            "issuer_name": "Example University",
            "issued": "2026-07-01",
            "achievement_id": "https://uni.example/achievements/python-101",
            "achievement_name": "Python 101 <b>bold</b>",
            "achievement_description": "Writes & tests small Python programs.",
            "criteria_narrative": "Passed the final project with 60% or more.",
            "achievement_image": image,
            "recipient_id": "did:example:ada",
        }
    )


@pytest.mark.slow(seconds=4)
def test_an_open_badge_shows_its_achievement_and_never_fetches_a_remote_image(
    browser: Browser, anvil: DevChain, registry: Deployed, rpc: RpcClient, tmp_path: Path
) -> None:
    """Two Open Badges 3.0 (Data Integrity) anchored and VALID: the page shows each one's achievement
    (name, description, criteria) as text, an image carried as a data: URI as an <img>, and a remote
    image only as its address: no request ever goes to it."""
    issued = issue_v2(
        registry.owner,
        registry.issuer,
        [open_badge(DATA_PNG), open_badge(REMOTE_IMAGE)],
        securing=DATA_INTEGRITY,
        seed="page-ob3",
    )
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    carried, remote = tmp_path / "carried.json", tmp_path / "remote.json"
    carried.write_text(issued.receipts[0].to_json())
    remote.write_text(issued.receipts[1].to_json())
    problems: list[str] = []
    requested: list[str] = []
    with start_node(anvil.rpc_url, registry.address, tmp_path) as node:
        with httpx.Client(base_url=node.url, timeout=30) as client:
            for receipt in issued.receipts:
                verdict_when(client, receipt, "VALID")
        context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=node.url)
        context.set_default_timeout(BROWSER_TIMEOUT_MS)
        try:
            page = context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
            page.on("request", lambda request: requested.append(request.url))
            open_page(page)
            expect(page.locator("#badge")).to_be_hidden()

            choose_file(page, carried)
            banner_says(page, "VALID")
            expect(page.locator("#badge")).to_be_visible()
            assert fact(page, "badge-name") == "Python 101 <b>bold</b>"  # text, never markup
            assert page.locator("#badge-facts b").count() == 0
            assert fact(page, "badge-description") == "Writes & tests small Python programs."
            assert fact(page, "badge-criteria") == "Passed the final project with 60% or more."
            image = page.locator("#badge-image")
            expect(image).to_be_visible()
            assert image.get_attribute("src") == DATA_PNG
            assert image.evaluate("node => node.complete && node.naturalWidth") == 1  # the CSP let it draw
            expect(page.locator('dd[data-fact="badge-image-link"]')).to_have_count(0)
            screenshot(page, tmp_path / "badge-carried.png")

            choose_file(page, remote)
            banner_says(page, "VALID")
            expect(page.locator('dd[data-fact="badge-image-link"]')).to_have_text(REMOTE_IMAGE)
            expect(page.locator("#badge-image")).to_be_hidden()
            assert page.locator("#badge-image").get_attribute("src") is None
            assert fact(page, "badge-name") == "Python 101 <b>bold</b>"
            assert page.locator("#badge a").count() == 0  # named as text: nothing to follow or prefetch
            screenshot(page, tmp_path / "badge-remote.png")

            choose_file(page, carried)  # and back: the card follows the receipt shown
            banner_says(page, "VALID")
            expect(page.locator("#badge-image")).to_be_visible()
            expect(page.locator('dd[data-fact="badge-image-link"]')).to_have_count(0)
        finally:
            context.close()
    assert problems == [], "the browser reported errors (CSP violations?)"
    assert [url for url in requested if "images.uni.example" in url] == []
    assert all(url.startswith((node.url, "data:")) for url in requested), requested
