"""AVI files: native readers for uncompressed and Motion-JPEG frames, OpenCV for other codecs.

The lab camera writes uncompressed 24-bit AVI (``BI_RGB`` DIB frames, rows stored bottom-up),
which OpenCV's FFmpeg backend cannot read safely: :class:`RawAviReader` reads it natively
(:mod:`.raw`), from the chunk offsets :func:`read_avi_layout` finds (:mod:`.riff`).
Motion-JPEG AVIs are read natively too (:class:`MjpegAviReader`, :mod:`.mjpeg`), and so are
uncompressed planar YUV 4:2:0 ones (I420, YV12, NV12: :class:`YuvAviReader`, :mod:`.yuv`, the
luma plane only; its grey values are explained there). Other
compressed AVIs (FFV1, XVID, ...) and other containers FFmpeg reads (.mp4, .mov, .mkv) go
through :class:`AviReader` (``cv2.VideoCapture``, :mod:`.opencv`). :func:`write_avi`
(:mod:`.write`) is the one AVI writer.

All readers convert colour to 8-bit grayscale with OpenCV's ``BGR2GRAY`` weights
(0.299 R + 0.587 G + 0.114 B), so the same pixels give the same gray values whichever reader
decoded them; a gray pixel (R = G = B = v) stays exactly v.

Importing this package is cheap (numpy only): OpenCV is imported when a reader or the FourCC
writer first needs it.
"""

from rbcflow.io.avi.mjpeg import MJPEG_FOURCCS, MjpegAviReader, jpeg_size
from rbcflow.io.avi.opencv import AviReader
from rbcflow.io.avi.raw import RawAviReader
from rbcflow.io.avi.riff import AviLayout, read_avi_layout
from rbcflow.io.avi.write import write_avi
from rbcflow.io.avi.yuv import YUV420_FOURCCS, YuvAviReader

__all__ = [
    "MJPEG_FOURCCS",
    "YUV420_FOURCCS",
    "AviLayout",
    "AviReader",
    "MjpegAviReader",
    "RawAviReader",
    "YuvAviReader",
    "jpeg_size",
    "read_avi_layout",
    "write_avi",
]
