"""The training item of DLIR: a sequence and, where it is known, its true motion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sequence import EchoSequence

# the training sources :func:`.data.open_source` reads besides a folder (here, torch-free, for the command
# line's help)
DATA_SPECS = "sim:START-STOP[:CACHE], sim-randomised:START-STOP[:CACHE], warped:FOLDER[:COPIES]"


@dataclass(eq=False)
class SequenceItem:
    """A training or validation sequence.

    Attributes:
        sequence: the frames, geometry, ED/ES indices and labels (when annotated).
        displacement: (T, H, W, 2) float32 mm true field from frame 0 to each frame (simulated data,
            warped templates), else None.
        inverse: (T, H, W, 2) float32 mm true field from each frame back to frame 0, on that frame's
            grid, where it is known exactly (warped templates); None: training inverts
            ``displacement`` by fixed-point iteration where it needs the inverse.
    """

    sequence: EchoSequence
    displacement: np.ndarray | None = None
    inverse: np.ndarray | None = None
