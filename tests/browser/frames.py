"""Finding the tool inside the platform's page.

The tool's iframe navigates across sites (platform auth page on localhost, then the tool on
127.0.0.1): chromium moves it to another renderer process, and a Frame object taken before that
may keep the old document's URL and never see the new one. So wait through a frame *locator*
(which resolves the iframe element's current frame at every try), and only then take the Frame.
"""
from __future__ import annotations

TOOL_IFRAME = "iframe#tool-frame"


def tool_frame(page, ready: str = "#launch-view", timeout: float = 30000):
    """The tool's frame in the platform page, once ``ready`` is visible in it."""
    try:
        page.frame_locator(TOOL_IFRAME).locator(ready).first.wait_for(timeout=timeout)
    except Exception as exc:  # say where the launch got stuck (frame URLs only: content() can hang there)
        frames = "\n".join(f"{f.name!r} {f.url}" for f in page.frames)
        raise AssertionError(f"{ready} never appeared in the tool's frame:\n{frames}") from exc
    return page.wait_for_selector(TOOL_IFRAME).content_frame()
