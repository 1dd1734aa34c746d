"""rbcflow: from a bright-field shear-flow video of red blood cells to the tank-treading fraction.

Reimplements and extends the pipeline of Darrin et al., "Classification of red cell dynamics
with convolutional and recurrent neural networks: a sickle cell disease case study",
Scientific Reports 13:745 (2023), doi:10.1038/s41598-023-27718-w.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rbcflow")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
