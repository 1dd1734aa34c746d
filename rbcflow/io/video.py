"""Video readers (AVI, TIFF stack, frame folder) and the open_video dispatcher.

Placeholder: implemented by the readers work of issue 2.
"""

VIDEO_EXTENSIONS: tuple[str, ...] = (".avi", ".tif", ".tiff")


def open_video(path, fps=None):  # pragma: no cover - replaced by the readers work
    raise NotImplementedError("readers not written yet")
