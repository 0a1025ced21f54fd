"""Screenshot of the app window, chosen per platform at run time."""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image


def window_box(window) -> tuple[int, int, int, int]:
    """Screen box (left, top, right, bottom) of a Tk window, from Tk's own geometry."""
    window.update_idletasks()
    left, top = window.winfo_rootx(), window.winfo_rooty()
    return left, top, left + window.winfo_width(), top + window.winfo_height()


def grab_window(window) -> Image.Image:
    """Capture the window's pixels: pyautogui + pygetwindow on Windows, Pillow elsewhere."""
    if sys.platform == "win32":
        return _grab_windows(window)
    from PIL import ImageGrab

    return ImageGrab.grab(bbox=window_box(window))


def _grab_windows(window) -> Image.Image:
    import pyautogui  # Windows only: imported here so Linux never needs a display for it
    import pygetwindow

    matches = pygetwindow.getWindowsWithTitle(window.title())
    if matches:
        found = matches[0]
        return pyautogui.screenshot(region=(found.left, found.top, found.width, found.height))
    left, top, right, bottom = window_box(window)
    return pyautogui.screenshot(region=(left, top, right - left, bottom - top))


def save_screenshot(window, path: Path) -> Path:
    """Grab the window and write it as PNG; raises OSError if the file cannot be written."""
    image = grab_window(window)
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial")
    try:
        image.save(temporary, format="PNG")
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
