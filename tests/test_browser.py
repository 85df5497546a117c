"""The web page in Chromium (Debian's, see conftest.py) against the real server.

Uploads real photos (scikit-image's astronaut and camera samples, so the screenshot the README
shows contains no evaluation data), waits for the results, reads the shown cut-out back from a
canvas, downloads one file and the ZIP of all, and checks error, keyboard and phone layouts.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from live_server import live_server
from PIL import Image

pytestmark = pytest.mark.browser

RESULT_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def base_url_live():
    with live_server() as base:
        yield base


def test_upload_shows_and_downloads_cutouts(page, base_url_live, sample_photo, sample_grey_photo, output_dir: Path):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(base_url_live + "/")
    assert page.title().startswith("mattekit")
    page.set_input_files("#file-input", [str(sample_photo), str(sample_grey_photo)])
    page.wait_for_selector('.card[data-state="done"] >> nth=1', timeout=RESULT_TIMEOUT_MS)
    assert page.locator('.card[data-state="done"]').count() == 2

    card = page.locator(".card", has_text=sample_photo.name)
    after = card.locator("img.after")
    assert after.is_visible()
    # The page shows the cut-out: read its pixels back. The astronaut's top-left corner is
    # background (transparent), the centre of her face is subject (opaque).
    corner, centre = after.evaluate("""img => {
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        const a = (x, y) => g.getImageData(x, y, 1, 1).data[3];
        return [a(5, 5), a(Math.round(img.naturalWidth * 0.45), Math.round(img.naturalHeight * 0.3))];
    }""")
    assert corner < 40 and centre > 215, (corner, centre)
    assert "512x512" in card.locator(".info").inner_text()

    with page.expect_download() as info:
        card.locator("a.download").click()
    download = info.value
    assert download.suggested_filename == f"{sample_photo.stem}-cutout.png"
    saved = output_dir / "browser-download.png"
    download.save_as(saved)
    with Image.open(saved) as img:
        assert img.mode == "RGBA" and img.size == (512, 512)
        assert img.getchannel("A").getextrema()[0] < 255  # it really has transparency

    with page.expect_download() as info:
        page.click("#download-all")
    zpath = output_dir / "browser-download-all.zip"
    info.value.save_as(zpath)
    with zipfile.ZipFile(zpath) as z:
        assert z.testzip() is None
        names = sorted(z.namelist())
        assert names == sorted([f"{sample_photo.stem}-cutout.png", f"{sample_grey_photo.stem}-cutout.png"])
        for name in names:
            assert Image.open(io.BytesIO(z.read(name))).mode == "RGBA"

    # Keyboard: the comparison slider moves with the arrow keys.
    slider = card.locator("input.slider")
    slider.focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    assert int(slider.input_value()) == 60
    slider.fill("50")
    card.locator("input.slider").dispatch_event("input")

    page.locator(".intro").scroll_into_view_if_needed()
    shot = output_dir / "browser.png"
    page.screenshot(path=str(shot), full_page=True)

    # Changing an option offers to apply it to every result: a white background, then no alpha.
    assert not page.is_visible("#apply")
    page.click('label[for="bg-colour"]')
    page.click("#apply")
    page.wait_for_selector('.card[data-state="done"] >> nth=1', timeout=RESULT_TIMEOUT_MS)
    corner = after.evaluate("""img => {
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        return Array.from(g.getImageData(2, 2, 1, 1).data);
    }""")
    assert corner == [255, 255, 255, 255], corner


def test_error_state_and_phone_layout(page, base_url_live, output_dir: Path, tmp_path: Path):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(base_url_live + "/")
    # The drop zone opens the file picker from the keyboard.
    # Watched in the page rather than through Playwright's file-chooser event: in full-suite runs
    # Chromium now and then never reported that event (3 of ~8 runs, never when this file ran
    # alone), while the page's own click on the picker input is what opens it.
    page.evaluate("""() => { window.pickerClicks = 0;
        document.querySelector('#file-input').addEventListener('click', () => window.pickerClicks++); }""")
    page.focus("#drop")
    page.keyboard.press("Enter")
    page.wait_for_function("window.pickerClicks === 1", timeout=60_000)
    assert page.eval_on_selector("#file-input", "el => el.type === 'file' && el.multiple")
    fake = tmp_path / "holiday.png"
    fake.write_bytes(b"this is not a picture at all")
    page.set_input_files("#file-input", str(fake))
    page.wait_for_selector('.card[data-state="error"]', timeout=60_000)
    message = page.locator('.card[data-state="error"] .status-text').inner_text()
    assert "not an image" in message  # the server's own message, shown to the user
    # 415: the same photo gets the same answer, so no Retry (issue 28 item 8).
    assert not page.locator('.card[data-state="error"] button.retry').is_visible()
    # Paste and drag-and-drop go through the same path (here: two more unreadable files).
    page.evaluate("""() => {
        const file = (name) => new File([new TextEncoder().encode('not a picture')], name, {type: 'image/png'});
        const pasted = new DataTransfer(); pasted.items.add(file('pasted.png'));
        document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: pasted, bubbles: true}));
        const dropped = new DataTransfer(); dropped.items.add(file('dropped.png'));
        document.querySelector('#drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dropped, bubbles: true, cancelable: true}));
    }""")
    page.wait_for_selector('.card[data-state="error"] >> nth=2', timeout=60_000)
    names = page.locator(".card .name").all_inner_texts()
    assert sorted(names) == ["dropped.png", "holiday.png", "pasted.png"], names
    # Nothing sticks out sideways on a phone-sized screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(output_dir / "browser-phone.png"), full_page=True)


def test_page_and_docs_load_nothing_from_other_hosts(page, base_url_live):
    """Users run this offline: the page and the Swagger UI at /docs fetch only from the app."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(base_url_live + "/")
    page.wait_for_selector("#drop")
    page.goto(base_url_live + "/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)  # rendered from /openapi.json
    assert page.locator(".opblock-summary-path", has_text="/api/v1/remove").count() >= 1
    foreign = [u for u in requested if not u.startswith((base_url_live, "data:", "blob:"))]
    assert not foreign, foreign


def test_busy_server_is_retried_by_the_page(page, sample_photo, sample_grey_photo):
    """One worker and no queue: the page's second upload gets 503, waits Retry-After, then succeeds."""
    with live_server({"MATTEKIT_WORKERS": "1", "MATTEKIT_QUEUE_SIZE": "0"}) as base:
        statuses: list[int] = []
        page.on("response", lambda r: statuses.append(r.status) if "/api/v1/remove" in r.url else None)
        page.goto(base + "/")
        page.select_option("#preset", "fast")
        page.set_input_files("#file-input", [str(sample_photo), str(sample_grey_photo)])
        page.wait_for_selector("text=Server busy, retrying", timeout=60_000)
        page.wait_for_selector('.card[data-state="done"] >> nth=1', timeout=RESULT_TIMEOUT_MS)
        assert 503 in statuses and statuses.count(200) == 2, statuses


def test_cropped_result_keeps_the_before_after_slider(page, base_url_live, sample_photo):
    """With "crop to subject" the original is cut to the server's X-Crop-Box, so the slider
    compares the same part of the photo before and after."""
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(base_url_live + "/")
    page.select_option("#preset", "fast")
    page.check("#crop")
    # No margin: the astronaut's box with the page's default 5 % margin is nearly the whole frame.
    page.eval_on_selector("#margin", "el => { el.value = '0'; el.dispatchEvent(new Event('input', {bubbles: true})); }")
    with page.expect_response(lambda r: "/api/v1/remove" in r.url) as info:
        page.set_input_files("#file-input", str(sample_photo))
    headers = info.value.headers
    assert info.value.status == 200 and "x-crop-box" in headers, headers
    left, top, right, bottom = (int(v) for v in headers["x-crop-box"].split(","))
    assert headers["x-frame-size"] == "512x512" and (right - left, bottom - top) != (512, 512)
    card = page.locator(".card", has_text=sample_photo.name)
    page.wait_for_selector('.card[data-state="done"]', timeout=RESULT_TIMEOUT_MS)
    assert "cropped" not in (card.get_attribute("class") or "")
    assert card.locator("input.slider").is_visible() and card.locator("img.before").is_visible()
    sizes = card.evaluate("""c => [c.querySelector('img.before'), c.querySelector('img.after')]
        .map(i => [i.naturalWidth, i.naturalHeight])""")
    assert sizes[0] == sizes[1] == [right - left, bottom - top], sizes
    # The "before" really is the original's box: its pixels are the photo's pixels there.
    shown = card.locator("img.before").evaluate("""img => {
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        return Array.from(g.getImageData(0, 0, c.width, c.height).data);
    }""")
    import numpy as np

    shown = np.array(shown, dtype=int).reshape(bottom - top, right - left, 4)[..., :3]
    with Image.open(sample_photo) as img:
        original = np.asarray(img.convert("RGB"), dtype=int)[top:bottom, left:right]
    assert np.abs(shown - original).mean() < 1.0


def test_page_asks_for_the_api_key_then_works(page, sample_photo):
    """A server with MATTEKIT_API_KEYS: the page shows a key field, says when a key is wrong,
    keeps the right one for the tab and sends it as X-API-Key."""
    with live_server({"MATTEKIT_API_KEYS": "page-key-1"}) as base:
        statuses: list[int] = []
        page.on("response", lambda r: statuses.append(r.status) if "/api/v1/remove" in r.url else None)
        page.goto(base + "/")
        page.wait_for_selector("#auth-key", state="visible", timeout=30_000)  # /limits said 401
        assert page.evaluate("document.activeElement.id") == "auth-key"
        assert page.get_by_label("API key", exact=True).is_visible()  # labelled for screen readers
        page.select_option("#preset", "fast")
        page.set_input_files("#file-input", str(sample_photo))
        page.wait_for_selector("text=Waiting for the API key", timeout=60_000)
        page.fill("#auth-key", "not-the-key")
        page.press("#auth-key", "Enter")
        page.wait_for_selector("#auth-error:has-text('not accepted')", timeout=60_000)
        assert page.is_visible("#auth-key")
        page.fill("#auth-key", "page-key-1")
        page.click("#auth button[type=submit]")
        page.wait_for_selector('.card[data-state="done"]', timeout=RESULT_TIMEOUT_MS)
        assert not page.is_visible("#auth")
        assert page.evaluate("sessionStorage.getItem('mattekit-api-key')") == "page-key-1"
        assert statuses[-1] == 200 and 401 in statuses, statuses
        # A reload in the same tab does not ask again.
        page.reload()
        page.wait_for_selector("#drop")
        page.wait_for_timeout(500)
        assert not page.is_visible("#auth")


@pytest.mark.parametrize("status, retry", [(422, False), (400, False), (408, True), (429, True), (500, True), (503, True)])
def test_retry_is_offered_only_where_it_can_help(page, base_url_live, sample_photo, status, retry):
    """Issue 28 item 8: a 4xx but 401/408/429 is about the request itself (Apply offers a run with
    other options); time, rate and server errors keep Retry. The API's answer is stubbed."""
    body = {"error": {"code": "x", "message": f"stubbed {status}"}}
    page.route("**/api/v1/remove", lambda route: route.fulfill(status=status, json=body, headers={"Retry-After": "1"}))
    page.goto(base_url_live + "/")
    page.set_input_files("#file-input", str(sample_photo))
    page.wait_for_selector('.card[data-state="error"]', timeout=60_000)
    assert f"stubbed {status}" in page.locator(".card .status-text").inner_text()
    assert page.locator(".card button.retry").is_visible() == retry


def test_a_heic_photo_says_it_has_no_preview(page, base_url_live, sample_photo, tmp_path: Path):
    """Issue 28 item 8: Chromium cannot draw HEIC, so the "before" side showed the cut-out under
    the slider; now the card says there is no preview and shows the cut-out alone."""
    pillow_heif = pytest.importorskip("pillow_heif")
    heic = tmp_path / "phone.heic"
    with Image.open(sample_photo) as img:
        pillow_heif.from_pillow(img.convert("RGB")).save(str(heic), quality=80)
    page.goto(base_url_live + "/")
    page.select_option("#preset", "fast")
    page.set_input_files("#file-input", str(heic))
    page.wait_for_selector('.card[data-state="done"]', timeout=RESULT_TIMEOUT_MS)
    card = page.locator(".card")
    assert "no-preview" in card.get_attribute("class")
    note = card.locator(".preview-note")
    assert note.is_visible() and "cannot show HEIC" in note.inner_text()
    for part in (".handle", ".slider", ".tag-before", "img.before"):
        assert not card.locator(part).is_visible(), part
    assert card.locator("img.after").is_visible()


def test_an_empty_file_is_told_it_is_empty(page, base_url_live, tmp_path: Path):
    """Issue 28 item 3: the page showed "send the photo as the multipart field 'file'" for an
    empty file, which it had sent in that field; the server now says the file is empty."""
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    page.goto(base_url_live + "/")
    page.set_input_files("#file-input", str(empty))
    page.wait_for_selector('.card[data-state="error"]', timeout=60_000)
    message = page.locator(".card .status-text").inner_text()
    assert "empty file" in message and "multipart" not in message, message
    assert not page.locator(".card button.retry").is_visible()
