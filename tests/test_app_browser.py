"""The web app in a real browser: headless Chromium from Debian's packages (`apt-get install -y chromium`) driven by
Playwright's Python API, against `bridgedit app`'s page served on a free local port over the bundled demo model.

Each tab's screenshot is written to $BRIDGEDIT_SCREENSHOTS when set (`BRIDGEDIT_SCREENSHOTS=docs/images` refreshes
the README's), else to a temporary folder."""

import os
import re
import shutil
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch
from conftest import free_port

from bridgedit import generation
from bridgedit.media import write_sounding_video, write_wav

pytestmark = pytest.mark.slow  # a browser and a server: `make test-fast` leaves them out

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
INSTALL = "apt-get update && apt-get install -y chromium"
VIDEO_PROMPT = "A red rubber ball bounces up and down on a beige floor."
AUDIO_PROMPT = "A dull, soft thud, repeated each time a rubber object hits the floor."
WAIT_MS = 90_000  # a generation of the demo model takes seconds; a loaded 2-core machine, longer


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    pytest.importorskip("gradio", reason="the app extra: pip install -e '.[app]'")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if CHROMIUM is None:
        pytest.skip(f"no Chromium on this machine: {INSTALL}")
    from bridgedit.app.studio import Studio
    from bridgedit.app.ui import launch
    from bridgedit.pipeline import BridgeDiTPipeline

    folder = tmp_path_factory.mktemp("app")
    pipe = BridgeDiTPipeline.from_pretrained(generation.default_model(), dtype=torch.float32)
    studio = Studio(pipe, folder / "clips")
    app, url = launch(studio, port=free_port(), block=False)
    screenshots = Path(os.environ.get("BRIDGEDIT_SCREENSHOTS") or folder / "screenshots")
    screenshots.mkdir(parents=True, exist_ok=True)
    try:
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True)
            yield SimpleNamespace(url=url, studio=studio, browser=browser, folder=folder, screenshots=screenshots)
            browser.close()
    finally:
        app.close()


@pytest.fixture
def page(served):
    page = served.browser.new_page(viewport={"width": 1280, "height": 1100})
    page.goto(served.url)
    page.wait_for_selector("#text-generate")
    yield page
    page.close()


def wait_for_status(page, pattern: str) -> str:
    status = page.locator("#status")
    status.filter(has_text=re.compile(pattern)).wait_for(timeout=WAIT_MS)
    return status.inner_text()


def served_clip(page, served, name: str) -> Path:
    """The result video's file as the page serves it, fetched over HTTP."""
    url = page.evaluate("document.querySelector('#result-video video').src")
    path = served.folder / name
    with urllib.request.urlopen(url, timeout=30) as response:
        path.write_bytes(response.read())
    return path


def streams(path: Path) -> tuple[int, float]:
    """(decoded video frames, decoded audio seconds) of a file."""
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].rate
        samples = sum(frame.samples for frame in container.decode(audio=0))
    return frames, samples / rate


def set_setting(page, name: str, value: int) -> None:
    """Type a number into the text tab's setting NAME ("seed", "steps") until the component has taken it: a box typed
    into while the settings panel is still opening can be re-rendered with its old value."""
    if not page.locator(f"#text-{name}").is_visible():
        page.locator("#text-settings").click()
    box = page.locator(f"#text-{name} input[type=number]")
    taken = page.locator(f"#text-{name} input[type=range]") if name == "steps" else box
    for _ in range(20):
        box.fill(str(value))
        box.press("Enter")
        box.blur()
        page.wait_for_timeout(300)
        if taken.input_value() == str(value):
            return
    raise AssertionError(f"the {name} setting never took {value}")


def message(page) -> str:
    toast = page.locator(".toast-body").last
    toast.wait_for(timeout=WAIT_MS)
    return toast.inner_text()


def test_text_to_a_sounding_video(page, served):
    page.locator("#text-video textarea").fill(VIDEO_PROMPT)
    page.locator("#text-audio textarea").fill(AUDIO_PROMPT)
    page.locator("#text-generate").click()
    assert "AV-Align" in wait_for_status(page, "Made in .* text")
    frames, seconds = streams(served_clip(page, served, "text.mp4"))
    assert frames == 17 and seconds == pytest.approx(17 / 15, abs=0.05)  # the demo model's 17 frames at 15 fps
    command = page.locator("#command textarea").input_value()
    assert "bridgedit generate" in command and "--seed 0" in command and VIDEO_PROMPT in command
    parameters = page.locator("#parameters").inner_text()
    assert '"num_inference_steps"' in parameters and "25" in parameters  # the model's own default, filled in
    page.locator("#result-picture img").wait_for()
    # a second clip: both kept in the gallery, newest first; selecting the first shows its own command again
    set_setting(page, "seed", 1)
    page.locator("#text-generate").click()
    page.locator("#status").filter(has_text="seed 1").wait_for(timeout=WAIT_MS)
    assert "--seed 1" in page.locator("#command textarea").input_value()
    thumbnails = page.locator("#gallery img")
    thumbnails.nth(1).wait_for(timeout=WAIT_MS)
    assert thumbnails.count() == 2
    thumbnails.nth(1).click()
    page.wait_for_function("() => document.querySelector('#command textarea').value.includes('--seed 0')")
    page.screenshot(path=served.screenshots / "app-text.png", full_page=True)


def test_sound_for_an_uploaded_video(page, served):
    given = served.folder / "given.mp4"
    pictures = np.zeros((12, 48, 48, 3), dtype=np.uint8)
    pictures[:, 16:32, 16:32] = [200, 30, 30]  # a red square
    write_sounding_video(given, pictures, 12.0, np.zeros((1, 8000), dtype=np.float32), 8000)
    page.get_by_role("tab", name="Sound for a video").click()
    page.locator("#given-video input[type=file]").set_input_files(str(given))
    page.locator("#given-video video").wait_for(timeout=WAIT_MS)  # uploaded
    page.locator("#v2a-audio textarea").fill(AUDIO_PROMPT)
    page.locator("#v2a-generate").click()
    wait_for_status(page, "Made in .* sound_for_video")
    frames, seconds = streams(served_clip(page, served, "v2a.mp4"))
    assert frames == 17 and seconds > 1.0
    assert "--video " in page.locator("#command textarea").input_value()
    page.screenshot(path=served.screenshots / "app-sound-for-video.png", full_page=True)


def test_video_for_an_uploaded_sound(page, served):
    rate = 8000
    beeps = np.zeros(2 * rate, dtype=np.float32)
    for start in (0.3, 0.9, 1.5):  # three short beeps
        beeps[int(start * rate) : int((start + 0.1) * rate)] = 0.5 * np.sin(np.linspace(0, 2 * np.pi * 80, 800))
    given = write_wav(served.folder / "given.wav", beeps[None], rate)
    page.get_by_role("tab", name="Video for a sound").click()
    page.locator("#given-audio input[type=file]").set_input_files(str(given))
    page.locator("#a2v-video textarea").fill(VIDEO_PROMPT)
    page.locator("#a2v-generate").click()
    wait_for_status(page, "Made in .* video_for_sound")
    frames, _ = streams(served_clip(page, served, "a2v.mp4"))
    assert frames == 17
    page.screenshot(path=served.screenshots / "app-video-for-sound.png", full_page=True)


def test_bad_input_is_a_message_in_the_page_and_the_server_keeps_serving(page, served):
    page.locator("#text-generate").click()
    assert "write both captions" in message(page)
    page.get_by_role("tab", name="Sound for a video").click()
    page.locator("#v2a-audio textarea").fill(AUDIO_PROMPT)
    page.locator("#v2a-generate").click()
    page.get_by_text("upload a video file first").wait_for(timeout=WAIT_MS)
    page.get_by_role("tab", name="Text to sounding video").click()
    page.locator("#text-video textarea").fill(VIDEO_PROMPT)
    page.locator("#text-audio textarea").fill(AUDIO_PROMPT)
    page.locator("#text-generate").click()
    wait_for_status(page, "Made in")  # the next request is served


def test_a_second_users_job_waits_its_turn_and_cancel_stops_a_running_job(page, served):
    """One job on the device at a time: a second session's job waits, showing its place in the queue, while the
    first runs 200 steps; cancelling the first stops it at its next step (nothing written) and the second runs."""
    clips_before = set(served.studio.out_dir.glob("*.mp4"))
    set_setting(page, "steps", 200)
    page.locator("#text-video textarea").fill(VIDEO_PROMPT)
    page.locator("#text-audio textarea").fill(AUDIO_PROMPT)
    page.locator("#text-generate").click()
    # the progress bar moves with the sampler's steps: "sampling", then "N/200 steps" with N growing
    page.get_by_text(re.compile(r"sampling")).first.wait_for(timeout=WAIT_MS)
    page.wait_for_function(
        "() => [...document.body.innerText.matchAll(/(\\d+)\\/200 steps/g)].some(m => Number(m[1]) >= 3)",
        timeout=WAIT_MS,
    )
    second = served.browser.new_page(viewport={"width": 1280, "height": 1100})
    second.goto(served.url)
    second.locator("#text-video textarea").fill(VIDEO_PROMPT)
    second.locator("#text-audio textarea").fill(AUDIO_PROMPT)
    second.locator("#text-generate").click()
    second.get_by_text(re.compile(r"queue: 1/1")).first.wait_for(timeout=WAIT_MS)  # its place, while the first runs

    page.locator("#text-cancel").click()
    assert "Cancelling" in wait_for_status(page, "Cancel")
    wait_for_status(second, "Made in")  # the device is free: the second job ran, with the model's 25 steps
    second.close()
    made = set(served.studio.out_dir.glob("*.mp4")) - clips_before
    assert len(made) == 1 and "seed0" in next(iter(made)).name  # the second's clip only: the first wrote nothing
