"""The dashboard in a real browser (headless chromium) against the real `djobs ui` process: sign in with
the printed address, see jobs and queues, pause a queue, cancel a job, act on selected jobs, and see an
event written by another process arrive without reloading the page. Every action is checked in the
database too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import djobs
from browser.support import TIMEOUT, UiProcess


@pytest.fixture
def ui(sqlite_url: str) -> Iterator[tuple[UiProcess, djobs.Queue]]:
    store = djobs.connect(sqlite_url)
    queue = djobs.Queue(store)

    @queue.handler("send-email", queue="emails")
    def send_email(args: Any) -> None:
        pass

    @queue.handler("resize")
    def resize(args: Any) -> None:
        pass

    proc = UiProcess(sqlite_url)
    yield proc, queue
    proc.stop()
    store.close()


def _wait(driver: Any, condition: Any, what: str) -> Any:
    """Poll `condition` until it holds. The page redraws its tables as data arrives, so an element found
    a moment ago may be gone: that only means "look again"."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, TIMEOUT, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException, IndexError])
    return wait.until(condition, message=f"waiting for {what}")


def _read(driver: Any, read: Any, what: str) -> Any:
    """Read from the page once it holds still: a read that meets a redrawn element is tried again."""
    return _wait(driver, lambda d: (read(d),), what)[0]


def _css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def _click(driver: Any, selector: str) -> None:
    def click(d: Any) -> bool:
        found = _css(d, selector)
        if not found:
            return False
        found[0].click()
        return True

    _wait(driver, click, f"clicking {selector}")


def test_sign_in_see_pause_cancel_and_watch_live(browser: Any, ui: tuple[UiProcess, djobs.Queue]) -> None:
    proc, queue = ui
    mail = [queue.enqueue("send-email", {"to": f"u{i}@example.com"}, delay=3600) for i in range(3)]
    image = queue.enqueue("resize", {"w": 640}, delay=3600)

    # The printed address signs the browser in and leaves the token out of the address bar.
    browser.get(proc.url)
    _wait(browser, lambda d: d.current_url == proc.base, "the token dropped from the address")
    assert proc.token not in browser.current_url
    assert not browser.execute_script("return document.cookie")  # HttpOnly: scripts never see it

    # Jobs and queues show.
    _wait(browser, lambda d: _css(d, f'#jobs tr[data-job="{image}"]'), "the jobs table")
    for job_id in mail:
        assert _css(browser, f'#jobs tr[data-job="{job_id}"]'), job_id
    queues = _read(browser, lambda d: {tr.get_attribute("data-queue") for tr in _css(d, "#queues tr[data-queue]")}, "the queues")
    assert queues == {"default", "emails"}
    text = _wait(browser, lambda d: _css(d, f'#jobs tr[data-job="{mail[0]}"]')[0].text, "the first job's row")
    assert "send-email" in text and "pending" in text and "u0@example.com" in text
    browser.execute_script("window.__sameDocument = true")  # gone if the page reloads

    # The stream connects; an event written by another process arrives without a reload.
    _wait(browser, lambda d: "streaming" in _css(d, "#live-state")[0].text, "the event stream")
    queue.pause_queue("elsewhere", reason="from another process")
    _wait(
        browser,
        lambda d: any("queue_paused" in e.text and "[elsewhere]" in e.text for e in _css(d, "#events [data-event]")),
        "the live event",
    )

    # Pause a queue from the page and see its state change.
    _click(browser, '#queues tr[data-queue="emails"] button[data-action="pause"]')
    _wait(browser, lambda d: "paused" in _css(d, '#queues tr[data-queue="emails"] .qstate')[0].text, "emails paused")
    assert queue.is_queue_paused("emails")
    _click(browser, '#queues tr[data-queue="emails"] button[data-action="resume"]')
    _wait(browser, lambda d: _css(d, '#queues tr[data-queue="emails"] .qstate')[0].text == "active", "emails resumed")
    assert not queue.is_queue_paused("emails")

    # Cancel a job (the page asks first).
    _click(browser, f'#jobs tr[data-job="{image}"] button[data-action="cancel"]')
    _wait(browser, lambda d: d.switch_to.alert, "the confirmation").accept()
    _wait(browser, lambda d: "cancelled" in _css(d, f'#jobs tr[data-job="{image}"] .jstatus')[0].text, "cancelled")
    assert queue.get_job(image).status == "cancelled"  # type: ignore[union-attr]

    # Select two jobs and cancel them together.
    for job_id in mail[:2]:
        _click(browser, f'#jobs tr[data-job="{job_id}"] input.pick')
    _wait(browser, lambda d: _css(d, "#bulk-count")[0].text == "2 selected", "two selected")
    _click(browser, "#bulk-cancel")
    _wait(browser, lambda d: d.switch_to.alert, "the bulk confirmation").accept()
    _wait(browser, lambda d: all("cancelled" in _css(d, f'#jobs tr[data-job="{j}"] .jstatus')[0].text for j in mail[:2]), "bulk cancel")
    assert [queue.get_job(j).status for j in mail] == ["cancelled", "cancelled", "pending"]  # type: ignore[union-attr]

    # Open a job: its detail shows, with its args.
    _click(browser, f'#jobs tr[data-job="{mail[2]}"] td.mono')
    _wait(browser, lambda d: not _css(d, "#detail-box")[0].get_attribute("hidden"), "the detail panel")
    _wait(browser, lambda d: "u2@example.com" in _css(d, "#detail")[0].text, "the job's args")

    assert browser.execute_script("return window.__sameDocument") is True
    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"] if hasattr(browser, "get_log") else []
    assert errors == [], errors


def test_without_the_token_the_page_says_how_to_sign_in(browser: Any, ui: tuple[UiProcess, djobs.Queue]) -> None:
    proc, queue = ui
    browser.get(proc.base)
    body = _wait(browser, lambda d: _css(d, "body")[0].text, "the page")
    assert "djobs ui" in body and "token" in body
    assert _css(browser, "#jobs") == []  # the dashboard itself is not served


def test_waits_limits_and_the_meta_filter(browser: Any, ui: tuple[UiProcess, djobs.Queue]) -> None:
    from dbsql import sql

    proc, queue = ui
    sleeper = queue.enqueue("resize", {"w": 1}, meta={"tenant": "42"}, key="tenant:42")
    waiter = queue.enqueue("resize", {"w": 2}, meta={"tenant": "7"})
    wake = datetime.now(UTC) + timedelta(hours=3)
    park = "UPDATE djobs_jobs SET status = 'waiting', wait_kind = ?, wait_signal = ?, run_at = ? WHERE id = ?"
    sql(queue.storage, park, ("sleep", None, wake.timestamp(), sleeper))
    sql(queue.storage, park, ("signal", "approved", 253402300799.0, waiter))
    queue.set_limits("emails", running=2, rate="5/s")

    browser.get(proc.url)
    row = _wait(browser, lambda d: _css(d, f'#jobs tr[data-job="{sleeper}"] .wait')[0].text, "the sleeper's wait")
    shown = browser.execute_script(  # the time alone when it is today, else the date too
        "const t = new Date(arguments[0]); return t.toDateString() === new Date().toDateString() "
        "? t.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'}) "
        ": t.toLocaleString([], {dateStyle: 'short', timeStyle: 'short'})",
        wake.isoformat(),
    )
    assert row == f"sleeping until {shown}"
    assert _read(browser, lambda d: _css(d, f'#jobs tr[data-job="{waiter}"] .wait')[0].text, "the waiter") == (
        "waiting for signal 'approved'"
    )
    limits = _wait(browser, lambda d: _css(d, '#queues tr[data-queue="emails"] .qlimits')[0].text, "the limits")
    assert limits == "run ≤2 · 5/s"

    # Filter by meta: only the sleeper (tenant 42) is left; its detail shows its key and meta.
    _css(browser, "#f-meta")[0].send_keys("tenant=42\n")
    _wait(browser, lambda d: not _css(d, f'#jobs tr[data-job="{waiter}"]'), "the other tenant filtered out")
    assert _css(browser, f'#jobs tr[data-job="{sleeper}"]')
    _click(browser, f'#jobs tr[data-job="{sleeper}"] td.mono')
    detail = _wait(browser, lambda d: "tenant:42" in _css(d, "#detail")[0].text and _css(d, "#detail")[0].text, "the detail")
    assert '{"tenant":"42"}' in detail and f"sleeping until {shown}" in detail

    # Dead letters: the failed jobs with their last error, retried all at once.
    def decline(args: Any) -> None:
        raise RuntimeError("card declined")

    queue.register("charge", decline, queue="payments", retries=0)
    charges = [queue.enqueue("charge", {"n": n}) for n in range(2)]
    queue.worker(queues={"payments": 1}, burst=True, poll_interval=0.05).run()
    _css(browser, "#f-meta")[0].clear()
    _click(browser, "#f-failed")
    _wait(browser, lambda d: {tr.get_attribute("data-job") for tr in _css(d, "#jobs tr[data-job]")} == set(charges), "the failed jobs")
    assert "RuntimeError: card declined" in _read(browser, lambda d: _css(d, f'#jobs tr[data-job="{charges[0]}"]')[0].text, "the row")
    _click(browser, "#retry-shown")
    _wait(browser, lambda d: d.switch_to.alert, "the retry confirmation").accept()
    _wait(browser, lambda d: not _css(d, "#jobs tr[data-job]"), "no failed job left")
    assert {queue.get_job(j).status for j in charges} == {"pending"}  # type: ignore[union-attr]


def test_send_a_signal_from_the_job_view(browser: Any, ui: tuple[UiProcess, djobs.Queue]) -> None:
    proc, queue = ui

    @queue.handler("approval", queue="approvals")
    def approval(ctx: djobs.Context, args: Any) -> Any:
        return {"approved_by": ctx.wait_for_signal("approved")}

    job_id = queue.enqueue("approval", {})
    queue.worker(queues={"approvals": 1}, burst=True, poll_interval=0.05).run()
    assert queue.get_job(job_id).wait_signal == "approved"  # type: ignore[union-attr]

    browser.get(proc.url)
    _click(browser, f'#jobs tr[data-job="{job_id}"] td.mono')
    _wait(browser, lambda d: not _css(d, "#signal")[0].get_attribute("hidden"), "the signal form")
    assert _read(browser, lambda d: _css(d, "#s-name")[0].get_attribute("value"), "the name") == "approved"  # awaited
    _css(browser, "#s-payload")[0].send_keys('{"by": "ann"}')
    _click(browser, '#signal button[data-action="signal"]')
    _wait(browser, lambda d: "signal 'approved' sent" in _css(d, "#flash")[0].text, "the signal sent")
    queue.worker(queues={"approvals": 1}, burst=True, poll_interval=0.05).run()
    assert queue.result(job_id, timeout=10) == {"approved_by": {"by": "ann"}}
    _wait(browser, lambda d: "completed" in _css(d, f'#jobs tr[data-job="{job_id}"] .jstatus')[0].text, "completed")
    _wait(browser, lambda d: _css(d, "#signal")[0].get_attribute("hidden") is not None, "no form for a finished job")
