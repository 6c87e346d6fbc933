"""kvschema serve's page in headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium; no browser is downloaded): it loads, answers what ``kvschema fit -o json``
answers for the command it shows, re-plans as inputs change, takes dropped files, works from the
keyboard, fits a phone's width, and breaks none of its own Content-Security-Policy."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason='needs the serve extra: pip install ".[serve]"')
pytest.importorskip("uvicorn", reason='needs the serve extra: pip install ".[serve]"')
pytest.importorskip("selenium", reason="needs selenium (the test-serve extra)")

import uvicorn
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from kvschema.cli import main
from kvschema.serve.app import LOOPBACK_HOSTS, create_app
from kvschema.serve.bundled import bundled_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="needs Debian's chromium and chromium-driver: apt-get install -y chromium "
    "chromium-driver (.ci/run installs them when it can)",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, in a thread of this process."""
    port = free_port()
    config = uvicorn.Config(
        create_app(allowed_hosts=LOOPBACK_HOSTS),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
    )
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = CHROMIUM or ""
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,2000",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    except WebDriverException as err:  # a chromium that cannot start here
        pytest.skip(f"headless chromium did not start: {err.msg}")
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def sequence(driver: WebDriver) -> int:
    return int(driver.execute_script("return Number(document.body.dataset.sequence || 0)"))


def answered(driver: WebDriver, after: int) -> None:
    """Wait for the page's next answer (or its error) after request number ``after``."""
    WebDriverWait(driver, 30).until(lambda d: sequence(d) > after)


def load(driver: WebDriver, url: str) -> None:
    driver.get(url)
    answered(driver, 0)


def cli_fit(command: str, folder: Path) -> dict[str, Any]:
    """Run the command the page shows (its config written to ``folder``), as JSON."""
    args = shlex.split(command)
    assert args[:2] == ["kvschema", "fit"]
    config = args.index("--hf-config") + 1
    args[config] = str(folder / args[config])
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main([*args[1:], "-o", "json"])
    data: dict[str, Any] = json.loads(out.getvalue())
    return data


def value(driver: WebDriver, element_id: str) -> str | None:
    found: str | None = driver.find_element(By.ID, element_id).get_attribute("data-value")
    return found


def check_page_against(driver: WebDriver, report: dict[str, Any]) -> None:
    """The figures, the memory bar, the page table and vLLM's lines are the report's."""
    plan = report["plan"]
    assert value(driver, "verdict") == report["verdict"]
    assert value(driver, "out-num-pages") == str(plan["num_pages"])
    assert value(driver, "out-kv-tokens") == str(plan["kv_cache_size_tokens"])
    assert float(value(driver, "out-concurrency") or "nan") == pytest.approx(
        plan["max_concurrency"]
    )
    assert value(driver, "out-max-model-len") == str(plan["max_model_len"])
    assert value(driver, "out-kv-gib") == str(report["available_kv_bytes"]["point"])
    log = driver.find_element(By.ID, "log").text.splitlines()
    assert log == [line["text"] for line in report["vllm_log"]]
    stage = report["stages"][report["bottleneck_stage"]]
    legend = {
        item.get_attribute("data-term"): int(item.get_attribute("data-value") or -1)
        for item in driver.find_elements(By.CSS_SELECTOR, "#legend li")
    }
    for term in ("weights", "activation", "non_torch", "cuda_graphs"):
        assert legend[term] == stage[term]["point"], term
    assert legend["kv"] == max(stage["available"]["point"], 0)
    total = report["hardware"]["cuda_total"]["point"]
    assert sum(legend.values()) == total  # the bar is the whole device
    segments = driver.find_elements(By.CSS_SELECTOR, "#bar .segment")
    assert len(segments) == len(legend)


def test_the_page_answers_what_kvschema_fit_answers(
    server: str, browser: WebDriver, tmp_path: Path
) -> None:
    load(browser, server)
    command = browser.find_element(By.ID, "command").text
    assert command == "kvschema fit --hf-config llama3-8b.json --gpu H100-SXM --gpus 1"
    (tmp_path / "llama3-8b.json").write_text(json.dumps(bundled_config("llama3-8b")))
    report = cli_fit(command, tmp_path)
    check_page_against(browser, report)
    rows = browser.find_elements(By.CSS_SELECTOR, "#groups tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == ["full_attention"]
    assert browser.find_element(By.CSS_SELECTOR, "#chart svg").get_attribute("role") == "img"
    sweep = browser.find_elements(By.CSS_SELECTOR, "#sweep-table tbody tr")
    assert len(sweep) > 20
    assert browser.find_element(By.ID, "sweep-command").text.startswith(
        "kvschema fit --hf-config llama3-8b.json --sweep"
    )


def test_changed_inputs_replan(server: str, browser: WebDriver, tmp_path: Path) -> None:
    load(browser, server)
    before = sequence(browser)
    Select(browser.find_element(By.ID, "model")).select_by_value("qwen3-8b")
    for element_id, text in (
        ("gpus", "2"),
        ("max-model-len", "32k"),
        ("utilization", "0.85"),
    ):
        field = browser.find_element(By.ID, element_id)
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(text)
    Select(browser.find_element(By.ID, "kv-cache-dtype")).select_by_value("fp8")
    WebDriverWait(browser, 30).until(
        lambda d: "fp8" in d.find_element(By.ID, "command").text and sequence(d) > before
    )
    time.sleep(0.6)  # past the debounce: the last change has been answered
    answered(browser, sequence(browser) - 1)
    command = browser.find_element(By.ID, "command").text
    assert command == (
        "kvschema fit --hf-config qwen3-8b.json --gpu H100-SXM --gpus 2 --kv-cache-dtype fp8 "
        "--gpu-memory-utilization 0.85 --max-model-len 32000"
    )
    (tmp_path / "qwen3-8b.json").write_text(json.dumps(bundled_config("qwen3-8b")))
    report = cli_fit(command, tmp_path)
    assert report["settings"]["tensor_parallel_size"] == 2
    check_page_against(browser, report)


def test_the_keyboard_reaches_every_control_in_order(server: str, browser: WebDriver) -> None:
    load(browser, server)
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('input, select')]"
        ".filter(c => c.labels.length === 0).map(c => c.id)"
    )
    assert unlabelled == []
    first = browser.execute_script(
        "return document.querySelector('a[href], input, select, button, [tabindex]').className"
    )
    assert first == "skip"  # the first stop skips to the answer
    browser.execute_script("document.querySelector('.skip').focus()")
    order = []
    for _ in range(18):
        ActionChains(browser).send_keys(Keys.TAB).perform()  # a file input takes keys as paths
        order.append(browser.switch_to.active_element.get_attribute("id") or "")
    assert order[:15] == [
        "model",
        "config-file",
        "index-file",
        "weights-gib",
        "gpu",
        "gpus",
        "tp",
        "pp",
        "utilization",
        "max-model-len",
        "max-num-seqs",
        "max-num-batched-tokens",
        "kv-cache-dtype",
        "enforce-eager",
        "sweep",
    ]
    # typing into the focused field re-plans
    gpus = browser.find_element(By.ID, "gpus")
    before = sequence(browser)
    gpus.send_keys(Keys.CONTROL, "a")
    gpus.send_keys("4")
    WebDriverWait(browser, 30).until(lambda d: "--gpus 4" in d.find_element(By.ID, "command").text)
    assert sequence(browser) > before
    # a sweep row's button takes its choice with Enter
    button = browser.find_element(By.CSS_SELECTOR, "#sweep-table tbody tr button")
    label = button.get_attribute("aria-label") or ""
    gpu = label.removeprefix("Use ").split(",")[0]
    button.send_keys(Keys.ENTER)
    WebDriverWait(browser, 30).until(
        lambda d: f"--gpu {gpu} " in d.find_element(By.ID, "command").text
    )


def test_readable_at_a_phones_width(server: str, browser: WebDriver) -> None:
    browser.set_window_size(390, 844)
    try:
        load(browser, server)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        inputs = browser.find_element(By.ID, "inputs").rect
        results = browser.find_element(By.ID, "results").rect
        assert results["y"] > inputs["y"] + inputs["height"] - 1  # one column
        assert abs(results["x"] - inputs["x"]) < 2
        font = browser.execute_script(
            "return parseFloat(getComputedStyle(document.getElementById('reason')).fontSize)"
        )
        assert font >= 14
    finally:
        browser.set_window_size(1280, 2000)


def test_a_dropped_config_and_index(server: str, browser: WebDriver, tmp_path: Path) -> None:
    load(browser, server)
    config = bundled_config("qwen2.5-7b")
    path = tmp_path / "my-model.json"
    path.write_text(json.dumps(config))
    before = sequence(browser)
    browser.find_element(By.ID, "config-file").send_keys(str(path))
    WebDriverWait(browser, 30).until(
        lambda d: "my-model.json" in d.find_element(By.ID, "command").text and sequence(d) > before
    )
    assert Select(browser.find_element(By.ID, "model")).first_selected_option.text.startswith(
        "Your my-model.json (qwen2)"
    )
    command = browser.find_element(By.ID, "command").text
    check_page_against(browser, cli_fit(command, tmp_path))
    index = {"metadata": {"total_size": 15_231_233_024}, "weight_map": {"lm_head": "a"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    browser.find_element(By.ID, "index-file").send_keys(
        str(tmp_path / "model.safetensors.index.json")
    )
    WebDriverWait(browser, 30).until(lambda d: "MODEL_DIR" in d.find_element(By.ID, "command").text)
    time.sleep(0.2)
    folder = tmp_path / "MODEL_DIR"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    report = cli_fit(browser.find_element(By.ID, "command").text, tmp_path)
    assert report["weights"]["provenance"] == "index"
    check_page_against(browser, report)


def test_errors_are_shown_with_the_rule(server: str, browser: WebDriver) -> None:
    load(browser, server)
    field = browser.find_element(By.ID, "max-model-len")
    field.send_keys("abc")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "max_model_len" in browser.find_element(By.ID, "error").text
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACK_SPACE)
    gpus = browser.find_element(By.ID, "gpus")
    gpus.send_keys(Keys.CONTROL, "a")
    gpus.send_keys("3")  # 32 heads do not split over 3 ranks
    WebDriverWait(browser, 30).until(
        lambda d: (
            d.find_element(By.ID, "error").is_displayed()
            and "[" in d.find_element(By.ID, "error").text
        )
    )
    assert "3" in browser.find_element(By.ID, "error").text
    assert "stale" in (browser.find_element(By.ID, "results").get_attribute("class") or "")


def test_the_page_keeps_its_own_policy(server: str, browser: WebDriver) -> None:
    """Chromium reports every Content-Security-Policy violation in the console: none."""
    load(browser, server)
    messages = [entry["message"] for entry in browser.get_log("browser")]
    assert [m for m in messages if "Content Security Policy" in m or "Refused" in m] == []


def test_a_screenshot_of_a_hybrid_model(server: str, browser: WebDriver, tmp_path: Path) -> None:
    """The page as the docs show it (``KVSCHEMA_SCREENSHOT=docs/img/serve.png`` writes it
    there): Qwen3-Next on four H100s, a 128K context, every group in the page table."""
    browser.set_window_size(1280, 1900)
    try:
        load(browser, server)
        before = sequence(browser)
        Select(browser.find_element(By.ID, "model")).select_by_value("qwen3-next-80b")
        gpus = browser.find_element(By.ID, "gpus")
        gpus.send_keys(Keys.CONTROL, "a")
        gpus.send_keys("4")
        browser.find_element(By.ID, "max-model-len").send_keys("128K")
        WebDriverWait(browser, 30).until(
            lambda d: (
                "--max-model-len 131072" in d.find_element(By.ID, "command").text
                and sequence(d) > before
            )
        )
        rows = browser.find_elements(By.CSS_SELECTOR, "#groups tbody tr")
        assert len(rows) > 1  # attention and gated delta-net state groups
        browser.execute_script("window.scrollTo(0, 0); document.activeElement.blur()")
        picture = tmp_path / "serve.png"
        assert browser.save_screenshot(str(picture))
        data = picture.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
        target = os.environ.get("KVSCHEMA_SCREENSHOT")
        if target:
            shutil.copyfile(picture, target)
    finally:
        browser.set_window_size(1280, 2000)


def test_a_model_that_does_not_fit_is_an_answer(server: str, browser: WebDriver) -> None:
    load(browser, server)
    before = sequence(browser)
    Select(browser.find_element(By.ID, "model")).select_by_value("llama3-70b")
    Select(browser.find_element(By.ID, "gpu")).select_by_value("L4")
    WebDriverWait(browser, 30).until(
        lambda d: (
            "--gpu L4" in d.find_element(By.ID, "command").text
            and "llama3-70b" in d.find_element(By.ID, "command").text
            and sequence(d) > before
        )
    )
    assert value(browser, "verdict") == "does_not_fit"
    assert browser.find_element(By.ID, "error").is_displayed() is False
    assert "weights" in browser.find_element(By.ID, "reason").text
    assert browser.find_element(By.ID, "out-num-pages").text == "\u2013"  # no blocks
    assert "No chart" in browser.find_element(By.ID, "chart").text
    assert browser.find_element(By.ID, "log").text  # vLLM's error lines
