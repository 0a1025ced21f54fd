"""The desktop window: widgets, the worker thread, and screen capture per platform."""
