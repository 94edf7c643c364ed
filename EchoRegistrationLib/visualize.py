"""Pictures of sequences for reports and the demo (matplotlib, no display needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .io.atomic import atomic_output  # noqa: E402
from .sequence import LABEL_NAMES, EchoSequence  # noqa: E402

LABEL_COLOURS = {1: "tab:red", 2: "tab:green", 3: "tab:blue"}


def frame_extent(seq: EchoSequence) -> tuple[float, float, float, float]:
    """matplotlib ``extent`` (left, right, bottom, top) in mm so frames show with their true aspect."""
    h, w = seq.frame_shape
    sx, sy = seq.spacing
    return (-0.5 * sx, (w - 0.5) * sx, (h - 0.5) * sy, -0.5 * sy)


def save_frame_montage(seq: EchoSequence, path: str | os.PathLike, *,
                       frames: Sequence[int] | None = None, max_frames: int = 6,
                       show_labels: bool = True, overwrite: bool = False) -> Path:
    """Write a PNG of some frames side by side, in mm, with label contours where annotated.

    Args:
        frames: frame indices to show; default up to ``max_frames`` evenly spaced, ED and ES included.
    """
    if frames is None:
        picks = set(np.linspace(0, seq.n_frames - 1, min(max_frames, seq.n_frames)).round().astype(int))
        picks |= {i for i in (seq.ed_index, seq.es_index) if i is not None}
        frames = sorted(picks)
    extent = frame_extent(seq)
    fig, axes = plt.subplots(1, len(frames), figsize=(3.2 * len(frames), 3.6), squeeze=False)
    vmin, vmax = np.percentile(seq.frames, [0.5, 99.5])
    h, w = seq.frame_shape
    xs = (np.arange(w)) * seq.spacing[0]
    ys = (np.arange(h)) * seq.spacing[1]
    for ax, index in zip(axes[0], frames):
        ax.imshow(seq.frames[index], cmap="gray", vmin=vmin, vmax=vmax, extent=extent)
        tag = " ED" if index == seq.ed_index else " ES" if index == seq.es_index else ""
        ax.set_title(f"frame {index}{tag}, t = {seq.frame_times[index]:.3f} s", fontsize=9)
        ax.set_xlabel("x (mm)", fontsize=8)
        ax.tick_params(labelsize=7)
        if show_labels and seq.labels is not None and index in seq.label_frames:
            label_map = seq.label_map(index)
            for code, colour in LABEL_COLOURS.items():
                if (label_map == code).any():
                    ax.contour(xs, ys, (label_map == code).astype(float), levels=[0.5],
                               colors=colour, linewidths=0.8)
    axes[0][0].set_ylabel("depth y (mm)", fontsize=8)
    if show_labels and seq.labels is not None:
        handles = [plt.Line2D([], [], color=c, label=LABEL_NAMES[k]) for k, c in LABEL_COLOURS.items()]
        fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(Path(seq.source).name, fontsize=10)
    fig.tight_layout(rect=(0, 0.06 if seq.labels is not None else 0, 1, 1))
    with atomic_output(path, overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
