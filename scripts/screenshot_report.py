"""See a Snakemake report as a reader does: open it in headless Chromium, click through its menu, and save a
screenshot and the visible text of every view (the page it opens on, then each result of each category).

    .venv/bin/python scripts/screenshot_report.py report.html screenshots/ [--chromium /usr/bin/chromium]

Chromium (Debian's package `chromium`) is driven over its DevTools protocol on loopback with aiohttp, a dependency of
selfexplain, so no browser-automation package is needed. tests/test_report.py uses the same `Browser`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

# Headless, and nothing that reaches the network (this machine's network is closed; Chromium would keep trying).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium to use: `explicit`, else the first of chromium, chromium-browser, google-chrome on PATH."""
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def chromium_command(
    chromium: str, user_data_dir: str | Path, *extra: str, size: tuple[int, int] = (1400, 1000)
) -> list[str]:
    """A headless Chromium command line with a fresh profile and a window of `size` pixels."""
    width, height = size
    return [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", f"--window-size={width},{height}", *extra]


class Browser:
    """One headless Chromium page driven over the DevTools protocol (async context manager)."""

    def __init__(self, chromium: str, size: tuple[int, int] = (1400, 1000), timeout: float = 60.0) -> None:
        self.chromium, self.size, self.timeout = chromium, size, timeout
        self._ids = iter(range(1, 1_000_000))
        self._pending: dict[int, asyncio.Future[Any]] = {}

    async def __aenter__(self) -> Browser:
        self._profile = tempfile.mkdtemp(prefix="selfexplain-chromium-")
        command = chromium_command(
            self.chromium, self._profile, "--remote-debugging-port=0", "about:blank", size=self.size
        )
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self._process.poll() is not None or time.monotonic() > deadline:
                await self._stop()
                raise RuntimeError(f"Chromium did not start its DevTools endpoint ({self.chromium})")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as response:
            pages = [t for t in await response.json() if t.get("type") == "page"]
        self._ws = await self._session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        await self.send("Page.enable")
        width, height = self.size
        await self.send(
            "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()

    async def _stop(self) -> None:
        if getattr(self, "_reader", None):
            self._reader.cancel()
        if getattr(self, "_ws", None):
            await self._ws.close()
        if getattr(self, "_session", None):
            await self._session.close()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    async def _read(self) -> None:
        async for message in self._ws:
            data = json.loads(message.data)
            future = self._pending.pop(data.get("id"), None)
            if future is not None and not future.done():
                future.set_result(data)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result, or a RuntimeError with the protocol's error."""
        message_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        await self._ws.send_str(json.dumps({"id": message_id, "method": method, "params": params}))
        data = await asyncio.wait_for(future, self.timeout)
        if "error" in data:
            raise RuntimeError(f"{method}: {data['error']}")
        return data.get("result", {})

    async def evaluate(self, expression: str, context: int | None = None) -> Any:
        params: dict[str, Any] = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        if context is not None:
            params["contextId"] = context
        result = await self.send("Runtime.evaluate", **params)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error: {result['exceptionDetails'].get('text')} in {expression[:80]}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str) -> Any:
        """Poll `expression` until it is truthy; its value."""
        deadline = time.monotonic() + self.timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            await asyncio.sleep(0.1)

    async def open_report(self, path: str | Path) -> None:
        """Load a Snakemake report and wait until its app has drawn the menu."""
        await self.send("Page.navigate", url=Path(path).resolve().as_uri())
        await self.wait_for(
            "document.readyState === 'complete' && !!document.querySelector('#app nav a')", "the report"
        )

    async def click(self, label: str) -> None:
        """Click the menu entry (category or subcategory) named `label`, as a reader does."""
        found = await self.evaluate(
            "(() => { const a = [...document.querySelectorAll('#app nav a')]"
            f".find(e => e.textContent.trim() === {json.dumps(label)}); if (a) a.click(); return !!a; }})()"
        )
        if not found:
            raise LookupError(f"no menu entry {label!r}")
        await asyncio.sleep(0.2)

    async def result_rows(self) -> list[str]:
        """The first label of each row of the results table the menu shows."""
        return await self.evaluate(
            "[...document.querySelectorAll('#app nav table tbody tr')].map(r => r.cells[0].textContent.trim())"
        )

    async def view(self, row: int) -> str:
        """Press the view (eye) button of a row of the results table and wait until its content is drawn: "frame" (an
        HTML result, shown inline), "img", or "download" (a file the report only offers to download; not pressed)."""
        before = await self.send("Page.getFrameTree")
        pressed = await self.evaluate(
            f"(() => {{ const r = document.querySelectorAll('#app nav table tbody tr')[{row}];"
            " const a = r && r.cells[r.cells.length - 1].querySelector('a'); if (!a) return null;"
            " if (a.hasAttribute('download')) return 'download'; a.click(); return 'pressed'; })()"
        )
        if pressed is None:
            raise LookupError(f"no result row {row}")
        if pressed == "download":
            return "download"
        shown = (
            "(() => { const f = document.querySelector('#app iframe');"
            " const i = document.querySelector('#app div.p-3 > img');"
            " return (f && 'frame') || (i && i.complete && i.naturalWidth > 0 && 'img'); })()"
        )
        kind = await self.wait_for(shown, "the result to show")
        if kind == "frame":
            old = {f["frame"]["id"] for f in before["frameTree"].get("childFrames", [])}
            await self.wait_for_frame(exclude=old)
        return kind

    async def _child_frame(self, exclude: set[str] = frozenset()) -> str | None:
        tree = await self.send("Page.getFrameTree")
        frames = [f["frame"]["id"] for f in tree["frameTree"].get("childFrames", [])]
        frames = [f for f in frames if f not in exclude]
        return frames[-1] if frames else None

    async def wait_for_frame(self, exclude: set[str] = frozenset()) -> str:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            frame = await self._child_frame(exclude)
            try:
                if frame and await self.frame_text(frame):
                    return frame
            except RuntimeError as exc:
                # The frame navigated (its first blank document replaced by the result) between creating our
                # reading context and using it: the context is gone, so look again.
                if "context" not in str(exc).lower() and "frame" not in str(exc).lower():
                    raise
            await asyncio.sleep(0.1)
        raise TimeoutError("timed out waiting for the result's frame")

    async def frame_text(self, frame: str | None = None) -> str:
        """The visible text of the result frame (an HTML result shown inline), empty until it has loaded."""
        frame = frame or await self._child_frame()
        if frame is None:
            return ""
        world = await self.send("Page.createIsolatedWorld", frameId=frame, worldName="reader")
        expression = "document.readyState === 'complete' && document.body ? document.body.innerText : ''"
        return await self.evaluate(expression, context=world["executionContextId"])

    async def text(self) -> str:
        """The visible text of the report page itself (menu and content, not the frame)."""
        return await self.evaluate("document.querySelector('#app').innerText")

    async def screenshot(self, path: str | Path) -> Path:
        data = await self.send("Page.captureScreenshot", format="png")
        path = Path(path)
        path.write_bytes(base64.b64decode(data["data"]))
        return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:60] or "item"


async def capture(report: Path, out: Path, chromium: str) -> list[Path]:
    """Screenshots and texts of the landing page and of every result, category by category."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    async with Browser(chromium) as browser:
        await browser.open_report(report)
        written.append(await browser.screenshot(out / "00_landing.png"))
        (out / "00_landing.txt").write_text(await browser.text(), encoding="utf-8")
        categories = json.loads(await browser.evaluate("JSON.stringify(categories)"))
        for c, category in enumerate(sorted(categories, key=str.lower), start=1):
            for subcategory in sorted(categories[category], key=str.lower):
                await browser.open_report(report)
                await browser.click(category)
                if len(categories[category]) > 1:
                    await browser.click(subcategory)
                for row, name in enumerate(await browser.result_rows()):
                    kind = await browser.view(row)
                    if kind == "download":
                        continue
                    stem = f"{c:02d}_{_slug(category)}__{_slug(subcategory)}__{row:02d}_{_slug(name)}"
                    written.append(await browser.screenshot(out / f"{stem}.png"))
                    if kind == "frame":
                        (out / f"{stem}.txt").write_text(await browser.frame_text(), encoding="utf-8")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="a report built with `snakemake --report report.html`")
    parser.add_argument("out", type=Path, help="folder for the PNG screenshots and text files")
    parser.add_argument("--chromium", help="the Chromium binary (default: chromium on PATH)")
    args = parser.parse_args(argv)
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("Chromium not found: install it (Debian: apt-get install chromium) or pass --chromium", file=sys.stderr)
        return 2
    for path in asyncio.run(capture(args.report, args.out, chromium)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
