"""The explorer in a real browser: Debian's headless chromium driven by selenium (`.ci/run` installs both).

One browser session for the module. `keras-sagan explore` runs as a subprocess on a free port of
127.0.0.1; the test clicks a pixel of a sample and checks the numbers behind every overlay against
`Generator(..., return_attention=True)`, runs an interpolation and checks its GIF, and checks that
bad input shows a message. Screenshots go to the test's temporary folder.
"""

import base64
import io
import json
import shutil
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from PIL import Image

from keras_sagan.export.saved_model import sample_z
from keras_sagan.images import to_uint8
from keras_sagan.interpolation import seed_z

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (.ci/run installs them)"
)


def start_explorer(model, log_path):
    """`keras-sagan explore --model MODEL --port 0` as a subprocess; returns `(process, url)`."""
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_sagan", "explore", "--model", model, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    line = process.stdout.readline()  # The URL line; printed once the model is loaded and the port bound.
    if "http://127.0.0.1:" not in line:
        process.kill()
        raise AssertionError(f"explore did not start: {line!r}; log: {open(log_path).read()[-2000:]}")
    return process, line.split()[2]


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1100,1000")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(browser, unconditional, tmp_path_factory):
    process, url = start_explorer(unconditional[1], tmp_path_factory.mktemp("explorer") / "server.log")
    try:
        browser.get(url)
        wait_idle(browser, lambda: len(browser.find_elements("css selector", "img.sample")) == 8)
        yield browser
    finally:
        stop(process)


def wait_idle(driver, condition, timeout=120):
    """Waits until no request is pending and `condition()` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = driver.find_element("tag name", "body")
        if body.get_attribute("data-pending") == "0" and condition():
            return
        time.sleep(0.1)
    raise AssertionError("the page did not finish in time")


def click_pixel(driver, element, row, col, size):
    from selenium.webdriver.common.action_chains import ActionChains

    width = element.size["width"] - 4  # the picked-sample border: 2 CSS pixels either side
    scale = width / size  # CSS pixels per image pixel
    x = (col + 0.5) * scale - width / 2
    y = (row + 0.5) * scale - width / 2
    ActionChains(driver).move_to_element_with_offset(element, round(x), round(y)).click().perform()


def test_clicking_a_pixel_shows_every_layers_map_for_it(page, unconditional, tmp_path):
    generator, _ = unconditional
    sample = page.find_elements("css selector", "img.sample")[3]
    click_pixel(page, sample, row=10, col=21, size=32)
    wait_idle(page, lambda: len(page.find_elements("css selector", "img.attention-map")) == 2)
    panel = page.find_element("id", "attention")
    assert (panel.get_attribute("data-row"), panel.get_attribute("data-col")) == ("10", "21")
    # Independently: the grid's z for sample 3 (seed 0, 8 images) and the full maps of the generator.
    z = sample_z(8, 16, 0, 0.0).numpy()[3:4]
    _, maps = generator(z, training=False, return_attention=True)
    overlays = page.find_elements("css selector", "img.attention-map")
    for overlay, full, resolution, cell in zip(overlays, maps, (8, 16), ((2, 5), (5, 10))):
        assert overlay.get_attribute("data-resolution") == str(resolution)
        assert overlay.get_attribute("data-query") == f"{cell[0]},{cell[1]}"
        shown = np.array(json.loads(overlay.get_attribute("data-values")))
        expected = keras.ops.convert_to_numpy(full)[0, cell[0] * resolution + cell[1]].reshape(resolution, resolution)
        np.testing.assert_allclose(shown, expected, rtol=1e-5, atol=1e-8)
    gammas = [float(o.get_attribute("data-gamma")) for o in overlays]
    assert gammas == [0.5, 1.5]
    assert "gamma 0.500" in page.find_element("id", "attention").text
    page.save_screenshot(str(tmp_path / "explorer_attention.png"))


def _gif_frames(data_url):
    gif = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    frames = []
    for index in range(gif.n_frames):
        gif.seek(index)
        frames.append(np.asarray(gif.convert("RGB")).astype(int))
    return frames


def test_interpolation_gives_a_gif_from_seed_a_to_seed_b(page, unconditional, tmp_path):
    generator, _ = unconditional
    for field, value in (("seed-a", "2"), ("seed-b", "5"), ("frames", "6")):
        element = page.find_element("id", field)
        element.clear()
        element.send_keys(value)
    page.find_element("id", "interpolate-button").click()
    link = page.find_element("id", "gif-link")
    wait_idle(page, lambda: bool(link.get_attribute("href")))
    assert link.get_attribute("download") == "walk.gif"
    frames = _gif_frames(link.get_attribute("href"))
    assert len(frames) == 6 and len(page.find_elements("css selector", "#walk img.frame")) == 6
    ends = [keras.ops.convert_to_numpy(to_uint8(generator(seed_z(s, 16)[None], training=False)))[0] for s in (2, 5)]
    for frame, own, other in ((frames[0], ends[0], ends[1]), (frames[-1], ends[1], ends[0])):
        assert np.abs(frame - own).mean() < min(10, np.abs(frame - other.astype(int)).mean() / 3)
    page.save_screenshot(str(tmp_path / "explorer_interpolation.png"))  # docs/explorer.png is one of these


def test_bad_input_is_a_visible_message(page):
    frames = page.find_element("id", "frames")
    frames.clear()
    frames.send_keys("500")
    page.find_element("id", "interpolate-button").click()
    error = page.find_element("id", "error")
    wait_idle(page, lambda: error.is_displayed())
    assert "frames" in error.text and "[2, 120]" in error.text
    page.execute_script("api('/api/attention', {row: 40, col: 0})")  # a query outside the image
    wait_idle(page, lambda: "row" in error.text)
    assert error.is_displayed()
    page.execute_script("api('/api/info', {})")  # the server still answers, and the message goes away
    wait_idle(page, lambda: not error.is_displayed())


def test_a_saved_model_says_it_has_no_maps(browser, saved_model, tmp_path):
    process, url = start_explorer(saved_model, tmp_path / "server.log")
    try:
        browser.get(url)
        wait_idle(browser, lambda: len(browser.find_elements("css selector", "img.sample")) == 8)
        assert "for sampling only" in browser.find_element("id", "model").text
        click_pixel(browser, browser.find_elements("css selector", "img.sample")[0], 0, 0, 32)
        error = browser.find_element("id", "error")
        wait_idle(browser, lambda: error.is_displayed())
        assert "SavedModel, for sampling only" in error.text
    finally:
        stop(process)
