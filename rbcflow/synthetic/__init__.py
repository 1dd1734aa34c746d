"""Synthetic bright-field shear-flow acquisitions with ground truth.

A generator of videos that look like the lab's recordings (Darrin et al. 2023): a background
with an illumination gradient, slow illumination drift, static debris and camera noise; red cells
drawn as bright-field projections of biconcave discs (dark rim, brighter inside, a dimple in the
middle when seen face on), about 10 px across, moving left to right at a steady speed each.

* Tank-treading cells keep their projected shape (an ellipse at a fixed inclination) while a
  faint membrane texture rolls around the rim.
* Flipping cells tumble on a Jeffery-like orbit: their projection goes disc -> rod (edge-on) ->
  disc with a period of a few to tens of frames, fast through the edge-on phase and slow near
  face-on.
* Unreliable cases (label 2): out of focus (``defocus``: blurred, a bright or dark blob with a
  halo), two cells touching and moving together (``overlap``), a cell entering or leaving the
  focal plane mid-track (``focus_change``: the contrast fades into a defocused blob), a cell cut
  by the top or bottom border (``partial``).

Everything is drawn procedurally from analytic profiles evaluated at pixel centres relative to
the cell's sub-pixel position, so positions are exact to well below a pixel. The truth follows
:data:`rbcflow.schema.TRUTH` and the coordinate convention of :mod:`rbcflow.schema` (``x`` =
column, ``y`` = row, origin at the centre of pixel (0, 0)).

Layers (as in the rest of the package): :func:`render_acquisition` plans the cells and returns a
:class:`SyntheticAcquisition` whose frames are rendered lazily, one at a time (any frame can be
rendered alone, deterministically); :func:`write_frames` streams frames into an AVI, a TIFF stack
or a folder of PNG frames; :func:`write_acquisition` does both and writes the truth tables;
:func:`composite_video` pastes real 31x31 crop sequences onto a synthetic background instead.

Modules: ``params`` (:class:`SynthConfig`), ``plan`` (cells, lanes, motion and shape over time),
``optics`` (contrast profiles, illumination, noise, quantisation), ``render`` (the acquisition
and its truth), ``write`` (videos and truth tables), ``composite`` (real crops on a synthetic
background). Importing the package loads numpy, pandas and OpenCV only (no torch, no plotting).

Examples
--------
>>> acq = render_acquisition(SynthConfig(width=256, height=128, n_frames=30), rng=0)
>>> frame = acq.frame(0)
>>> frame.shape, frame.dtype.name
((128, 256), 'uint8')
>>> list(acq.truth.columns)
['track_id', 'label', 'frame', 'x', 'y']
"""

from rbcflow.synthetic.composite import composite_video
from rbcflow.synthetic.params import PRESETS, UNRELIABLE_KINDS, SynthConfig, preset_config
from rbcflow.synthetic.render import SyntheticAcquisition, render_acquisition, true_fraction
from rbcflow.synthetic.write import (
    AVI_CODECS,
    FORMATS,
    guess_format,
    truth_paths,
    write_acquisition,
    write_frames,
    write_tables,
)

__all__ = [
    "AVI_CODECS",
    "FORMATS",
    "PRESETS",
    "UNRELIABLE_KINDS",
    "SynthConfig",
    "SyntheticAcquisition",
    "composite_video",
    "guess_format",
    "preset_config",
    "render_acquisition",
    "true_fraction",
    "truth_paths",
    "write_acquisition",
    "write_frames",
    "write_tables",
]
