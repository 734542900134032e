"""The web page in a real browser: Debian's Chromium driven by Playwright (``-m browser``).

Upload a clip, wait for the stems, move a volume slider, mute a stem, play, download a stem
and the remix, and save screenshots (docs/screenshot.png and a phone-sized one in tmp).
Skipped when Playwright or /usr/bin/chromium is missing (``playwright install`` cannot fetch
browsers here: the system Chromium is used).
"""

from __future__ import annotations

import io
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "screenshot.png"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic",
        "--autoplay-policy=no-user-gesture-required"]  # fmt: skip
MODEL = "tiny-conv_tasnet"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")


def clip(seconds: float = 4.0, sample_rate: int = 44100) -> bytes:
    """A short 'song': a plucked bass line, a chord pad and noise-burst drums (stereo)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    beat = (t * 2.0) % 1.0  # 120 bpm
    bass = np.sin(2 * np.pi * np.where(t % 2 < 1, 55.0, 73.4) * t) * np.exp(-3 * beat)
    pad = sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)) / 3
    pad *= 0.5 + 0.5 * np.sin(2 * np.pi * 0.25 * t)
    drums = np.random.default_rng(0).standard_normal(t.size) * np.exp(-30 * ((t * 4) % 1.0))
    left = 0.4 * bass + 0.25 * pad + 0.2 * drums
    right = 0.4 * bass + 0.3 * pad + 0.15 * drums
    buf = io.BytesIO()
    sf.write(buf, np.stack([left, right], 1).astype(np.float32), sample_rate, format="WAV")
    return buf.getvalue()


@pytest.fixture()
def server(tmp_path):
    from unweave.server import Settings, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(Settings(data_dir=tmp_path / "data", default_model=MODEL))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(20)


def test_page_upload_mix_download(server, tmp_path):
    song = tmp_path / "demo song.wav"
    song.write_bytes(clip())
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900},
                                    accept_downloads=True)  # fmt: skip
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server)
            page.wait_for_selector(f"#model option[value='{MODEL}']", state="attached")
            assert page.locator("#model").input_value() == MODEL
            assert "untrained" in page.locator("#model-desc").inner_text()

            page.set_input_files("#file", str(song))
            assert "demo song.wav" in page.locator("#drop-main").inner_text()
            page.click("#start")
            page.wait_for_selector("#results:not([hidden])", timeout=120_000)
            page.wait_for_selector("#play:not([disabled])", timeout=30_000)
            rows = page.locator(".stem")
            assert rows.count() >= 2

            # live remix: turn one stem down, mute another
            first, second = rows.nth(0), rows.nth(1)
            first.locator(".volume").fill("0.3")
            assert first.locator(".vol-value").inner_text() == "30%"
            second.locator(".mute").click()
            assert second.locator(".mute").get_attribute("aria-pressed") == "true"
            assert "silent" in (second.get_attribute("class") or "")

            page.click("#play")
            page.wait_for_function(
                "document.getElementById('clock').textContent.startsWith('0:01')", timeout=10_000
            )
            page.click("#play")  # pause
            assert "playing" not in (page.locator("#play").get_attribute("class") or "")

            with page.expect_download() as info:
                first.locator(".stem-dl").click()
            stem_file = tmp_path / "stem.wav"
            info.value.save_as(stem_file)
            assert sf.info(stem_file).duration == pytest.approx(4.0, abs=1e-3)

            with page.expect_download() as info:
                page.click("#render")
            remix_file = tmp_path / "remix.wav"
            info.value.save_as(remix_file)
            assert info.value.suggested_filename == "demo song - remix.wav"
            assert sf.info(remix_file).duration == pytest.approx(4.0, abs=1e-3)

            page.wait_for_selector("#jobs .pill.done")
            page.evaluate("window.scrollTo(0, 0)")
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            page.screenshot(path=str(tmp_path / "desktop.png"), full_page=True)

            phone = browser.new_page(viewport={"width": 390, "height": 844},
                                     device_scale_factor=2)  # fmt: skip
            phone.goto(server + page.url[len(server):])  # same job, from the URL hash
            phone.wait_for_selector("#play:not([disabled])", timeout=30_000)
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"page overflows a phone screen ({width} px)"
            phone.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
