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
        ax.set_xlabel("lateral x (mm)", fontsize=8)
        ax.tick_params(labelsize=7)
        if show_labels and seq.labels is not None and index in seq.label_frames:
            label_map = seq.label_map(index)
            for code, colour in LABEL_COLOURS.items():
                if (label_map == code).any():
                    ax.contour(xs, ys, (label_map == code).astype(float), levels=[0.5],
                               colors=colour, linewidths=1.0 if code == 1 else 0.8, zorder=3 - code)
    axes[0][0].set_ylabel("depth y (mm)", fontsize=8)
    if show_labels and seq.labels is not None:
        handles = [plt.Line2D([], [], color=c, label=LABEL_NAMES[k]) for k, c in LABEL_COLOURS.items()]
        fig.legend(handles=handles, loc="upper right", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(Path(seq.source).name, fontsize=10, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    with atomic_output(path, overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def deformed_grid_lines(displacement: np.ndarray, spacing: tuple[float, float],
                        step_px: int = 12) -> list[np.ndarray]:
    """Polylines (N, 2) in mm of a reference-grid every ``step_px`` pixels mapped by p -> p + u(p),
    i.e. where the reference grid lies in the moving frame. ``displacement`` is (H, W, 2) mm."""
    h, w = displacement.shape[:2]
    xs, ys = np.meshgrid(np.arange(w) * spacing[0], np.arange(h) * spacing[1])
    moved = np.stack((xs + displacement[..., 0], ys + displacement[..., 1]), axis=-1)
    return [moved[i] for i in range(0, h, step_px)] + [moved[:, j] for j in range(0, w, step_px)]


def save_registration_figure(seq: EchoSequence, displacement: np.ndarray, warped: np.ndarray,
                             frame: int, reference: int, path: str | os.PathLike, *,
                             overwrite: bool = False) -> Path:
    """PNG of one registered frame: reference, moving frame with the deformed reference grid,
    moving frame warped onto the reference, and the absolute differences before and after.

    Args:
        displacement: (T, H, W, 2) mm fields on the reference grid; warped: (T, H, W) frames.
    """
    extent = frame_extent(seq)
    vmin, vmax = np.percentile(seq.frames, [0.5, 99.5])
    ref, mov = seq.frames[reference], seq.frames[frame]
    before, after = np.abs(mov - ref), np.abs(warped[frame] - ref)
    dmax = np.percentile(before, 99)
    panels = [(ref, "gray", (vmin, vmax), f"reference: frame {reference}"),
              (mov, "gray", (vmin, vmax), f"frame {frame} + deformed reference grid"),
              (warped[frame], "gray", (vmin, vmax), f"frame {frame} warped to reference"),
              (before, "magma", (0, dmax), f"|difference| before (mean {before.mean():.1f} grey levels)"),
              (after, "magma", (0, dmax), f"|difference| after (mean {after.mean():.1f} grey levels)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    for ax, (image, cmap, (lo, hi), title) in zip(axes, panels):
        ax.imshow(image, cmap=cmap, vmin=lo, vmax=hi, extent=extent)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("lateral x (mm)", fontsize=8)
    for line in deformed_grid_lines(displacement[frame], seq.spacing):
        axes[1].plot(line[:, 0], line[:, 1], color="yellow", linewidth=0.5)
    axes[1].set_xlim(extent[:2])
    axes[1].set_ylim(extent[2:])
    axes[0].set_ylabel("depth y (mm)", fontsize=8)
    fig.tight_layout()
    with atomic_output(path, overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
