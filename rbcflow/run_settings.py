"""How a run is carried out: settings that never change a figure of the analysis.

Nothing here is hashed into :func:`rbcflow.config.params_id` (a changed limit, batch size or
thread count must not make finished results look stale); the parameters that do change the
figures are in :mod:`rbcflow.config`. Split from ``config`` when it passed the 400-line limit.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputLimits:
    """Frame sizes every reader refuses before decoding (what a header declares is checked).

    Not part of any :func:`params_id`: a limit decides whether an input is read, never how.

    max_frame_megapixels : a frame of more pixels (rows x cols, in millions) is refused. The
        front end holds about 30 MB per megapixel (float work images, background samples; an
        8-frame 40 MP video peaked at 1.44 GB, 64 MP at 1.8 GB): 32 MP keeps an analysis
        well under 1.5 GB. The lab camera's frames are 0.8 MP.
    max_frame_mib : a frame whose decoded samples (pixels x channels x bytes) exceed this many
        MiB is refused before decoding (a 32 MP RGBA 16-bit page is 244 MiB).
    min_frame_side : a frame with fewer rows or columns is refused: the detector averages
        4 x 4 blocks and a cell is about 10 pixels across.
    """

    max_frame_megapixels: float = 32.0
    max_frame_mib: int = 256
    min_frame_side: int = 8


@dataclass(frozen=True)
class StreamConfig:
    """How ``analyze`` classifies tracks while the front end runs (not hashed into
    ``params_id``: these change speed, memory and the report's gallery, never a number).

    batch_tracks : tracks per classifier call (batched inference, yet classified while
        tracking).
    min_batch_tracks : while the classifier's worker waits with nothing to do, a batch goes
        as soon as it holds this many tracks rather than ``batch_tracks`` (a video with few
        tracks is then classified while it is tracked, not all after it).
    queue_tracks : tracks waiting for the classifier at most (bounds memory).
    gallery_borderline, gallery_confident : per class, the calls nearest their threshold and the
        most confident calls shown in the report's gallery.
    gallery_frames : frames per gallery strip, evenly spaced through the track.
    torch_threads, opencv_threads : torch's intra-op and OpenCV's threads while the front end
        runs; 0: the thread budget's rule for this machine
        (:func:`rbcflow.threads.analyze_budget`: 1 and 1 on 2 cores).
    reuse_frames_mib : when the background's samples come from one sequential pass
        (compressed video: seeks dearer than decoding in order) and the whole video decoded
        takes at most this many MiB, the front end tracks the frames of that pass instead of
        decoding the video a second time (:func:`rbcflow.frontend.run.run_frontend`); 0: never.
        A 20-s 480x360 FFV1 acquisition is 198 MiB decoded and 3.6 ms of CPU a frame to
        decode: 4.3 s of CPU saved.
    """

    batch_tracks: int = 32
    min_batch_tracks: int = 8
    queue_tracks: int = 256
    gallery_borderline: int = 8
    gallery_confident: int = 4
    gallery_frames: int = 10
    torch_threads: int = 0
    opencv_threads: int = 0
    reuse_frames_mib: int = 256


@dataclass(frozen=True)
class OutputConfig:
    """Output folders (not hashed into ``params_id``).

    min_free_bytes : an output folder with less free space is refused before any work (the
        outputs of a 20 s acquisition take ~5 MB; a report page ~1 MB).
    """

    min_free_bytes: int = 64 * 1024**2


@dataclass(frozen=True)
class SamplesConfig:
    """Samples, patients and their baseline (:mod:`rbcflow.samples`; not hashed).

    baseline_min : earlier passing draws a patient needs before their baseline band is drawn
        (when no draw is marked ``baseline`` in the sheet).
    baseline_sd : the band is mean +/- this many standard deviations (Viallat et al.: 2).
    fraction_decimals, seconds_decimals : rounding of fractions and of durations in the
        tables and pages made for people (samples.csv, index.html, report.xlsx).
    registry_env : environment variable naming the registry file instead of the default one
        in the user's data directory.
    """

    baseline_min: int = 4
    baseline_sd: float = 2.0
    fraction_decimals: int = 3
    seconds_decimals: int = 1
    registry_env: str = "RBCFLOW_REGISTRY"


@dataclass(frozen=True)
class ReviewConfig:
    """What ``analyze`` keeps for ``rbcflow review`` and how the review serves it (not hashed
    into ``params_id``: nothing here changes a figure of the analysis).

    strip_max_frames : frames of a track kept as its strip (``strips/TRACK.png``, the
        authors' format); a longer track keeps this many evenly spaced frames.
    thumbnail_width : width of the field thumbnail (``thumbnail.png``, the background), pixels.
    host : the address ``rbcflow review`` listens on (local only by default).
    port : its port (0: any free port).
    prior_rule_reliable : the reviewed estimate's prior chance that a track a rule rejected is
        reliable, at the rule's median ``p_reliable`` (:mod:`rbcflow.review.calibrated`).
    prior_sd_reliable : prior standard deviations of the reliability regression's intercept,
        ``logit(p_reliable)`` and ``logit(p_tank_treading)`` coefficients (per group).
    prior_sd_tank_treading : those of the tank-treading regression's intercept and
        ``logit(p_tank_treading)`` coefficient (wide: stage 2 can be far off on new data).
    """

    strip_max_frames: int = 150
    thumbnail_width: int = 480
    host: str = "127.0.0.1"
    port: int = 8765
    prior_rule_reliable: float = 0.03
    prior_sd_reliable: tuple[float, float, float] = (2.0, 0.5, 0.5)
    prior_sd_tank_treading: tuple[float, float] = (5.0, 10.0)


@dataclass(frozen=True)
class InferenceConfig:
    """How the classifiers run on sequences (inference, ``evaluate``, ``classify``).

    batch_size : sequences per network batch (and per progress step) on a GPU; it changes
        speed and memory, never a probability (beyond float rounding, ~1e-7).
    cpu_batch_size : the same on the CPU, where small batches stay in the caches (measured by
        ``benchmarks/bench_classify.py``: batches of 256 cost twice the CPU time per track).
    """

    batch_size: int = 256
    cpu_batch_size: int = 32


@dataclass(frozen=True)
class ParallelConfig:
    """How ``analyze --workers`` / ``--scheduler`` share a machine or a cluster (not hashed:
    the engines change the time a batch takes, never a figure; :mod:`rbcflow.batch.parallel`,
    :mod:`rbcflow.batch.dask_run`, :mod:`rbcflow.batch.workers`).

    worker_peak_mib : one worker's peak resident memory, MiB, what ``--workers auto`` plans
        with: VmHWM measured 744 MiB for a worker analysing 20-s 480x360 synthetic
        acquisitions with the shipped models (``benchmarks/bench_workers.py``; 510-580 MiB on
        160x120 test videos: torch and the models are most of it); the front end holds ~30 MB
        per megapixel of frame, so the lab's 1024x768 frames add ~20 MB. Since the front end
        keeps a short video's decoded frames for its tracking pass (``reuse_frames_mib``,
        at most 256 MiB) the same 480x360 batch measured 838-889 MiB: 1,024 with a margin
        for a video just under that limit.
    gpu_bytes_per_track : GPU memory one track's classification holds, bytes: every layer's
        output of the shipped stage-2 ensemble for one track is 3.9 MiB (stage 1's 1.6 MiB;
        forward hooks on the leaf modules, ``benchmarks/bench_workers.py`` prints it, and on a
        GPU the allocator's peak per track); the stages run one after the other, and inference
        frees each layer's input after use, so 4 MiB is an upper bound.
    gpu_memory_share : the part of the GPU's free memory the workers' batches may take
        together (the rest: their CUDA contexts, the allocator's rounding).
    local_workers, local_threads : ``--scheduler local``'s LocalCluster (worker processes,
        threads each).
    dask_retries : times a Dask task is run again after it raised (a worker that dies is
        handled by the scheduler's own ``distributed.scheduler.allowed-failures``, 3 by default).
    worker_restarts : ``--workers``: times an acquisition that was at work in a worker process
        that died (killed, out of memory) is given to a fresh set of workers before it becomes
        a ``failed`` row; the pool is restarted for it, and the acquisitions that were not
        running carry on. If the workers die that many times in a row with no acquisition
        finishing in between, the batch stops with a one-line message.
    """

    worker_peak_mib: int = 1024
    gpu_bytes_per_track: int = 4 * 1024**2
    gpu_memory_share: float = 0.8
    local_workers: int = 2
    local_threads: int = 1
    dask_retries: int = 2
    worker_restarts: int = 2
