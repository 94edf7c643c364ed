"""PNG pictures of a strain analysis: curves, strain maps and the segment diagram (matplotlib).

Colours follow the vendor convention: shortening (negative strain) red, lengthening blue.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from ..io.atomic import atomic_output  # noqa: E402
from ..sequence import EchoSequence  # noqa: E402
from ..visualize import frame_extent  # noqa: E402
from .result import LONGITUDINAL_RANGE, NO_SPACING, StrainResult, percent_text  # noqa: E402

STRAIN_COLOURS = "RdBu"           # low (shortening) red, high (lengthening) blue
TRANSVERSE_RANGE = 60.0           # % on transverse (wall thickening) maps
LABEL_OFFSET = 26.0  # points from a segment's centre line to its label in the segment diagram
UNRELIABLE_COLOUR = "lightgrey"  # segments whose tracking quality is too low to trust their strain
SEGMENT_COLOURS = ("tab:orange", "tab:olive", "tab:green", "tab:cyan", "tab:blue", "tab:purple")
DPI = 110


def _save(fig: plt.Figure, path: str | os.PathLike, overwrite: bool) -> Path:
    with atomic_output(path, overwrite) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    plt.close(fig)
    return Path(path)


UNMEASURED_COLOUR = "lightgrey"  # the time spans of frames whose field measures no motion
MAX_LISTED = 8  # unmeasured frames listed by number in the curves' title


def unmeasured_spans(t: np.ndarray, unmeasured: np.ndarray) -> list[tuple[float, float]]:
    """The (start, end) spans of ``t`` to shade for runs of unmeasured frames: each run from half way to
    the frame before it to half way to the frame after it (half the neighbouring interval at either
    end of ``t``; a single frame spans nothing).

    Args:
        t: (T,) increasing x values of the frames (s or frames).
        unmeasured: (T,) bool, frames whose field is not a measurement of motion
            (:attr:`.result.StrainResult.unmeasured`).
    """
    t = np.asarray(t, dtype=float)
    if t.size < 2:
        return []
    edges = np.concatenate([[t[0] - 0.5 * (t[1] - t[0])], 0.5 * (t[1:] + t[:-1]), [t[-1] + 0.5 * (t[-1] - t[-2])]])
    flags = np.concatenate([[False], np.asarray(unmeasured, dtype=bool), [False]])
    starts = np.flatnonzero(flags[1:] & ~flags[:-1])
    ends = np.flatnonzero(~flags[1:] & flags[:-1])
    return [(float(edges[a]), float(edges[b])) for a, b in zip(starts, ends)]


def save_strain_curves(result: StrainResult, path: str | os.PathLike, *,
                       overwrite: bool = False) -> Path:
    """PNG: GLS (endocardial, mid-wall) and the six segment curves over time from ED (frames from
    ED when the frame times are unknown), and the LV volume curve with EDV, ESV and EF (volume as %
    of EDV when the pixel size is unknown). Frames whose field measures no motion are shaded grey
    on both (:func:`unmeasured_spans`) and listed in the strain's title (the first
    :data:`MAX_LISTED`): their values are drawn as tracked, but they are no measurement."""
    t, time_title = result.timeline()
    spans = unmeasured_spans(t, result.unmeasured)
    fig, (ax, ax_volume) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.6, 1]})
    for k, name in enumerate(result.segment_names):
        ax.plot(t, result.segmental[:, k], color=SEGMENT_COLOURS[k], linewidth=1.1, label=name)
    ax.plot(t, result.gls_endo, color="black", linewidth=2.4, label="GLS endocardial")
    ax.plot(t, result.gls_mid, color="black", linewidth=1.4, linestyle="--", label="GLS mid-wall")
    peak = result.peaks()["GLS endocardial"]
    unmeasured = ""
    if peak["peak_frame"] is None:  # not measured: said in the title, no point drawn
        unmeasured = f"\npeak GLS {result.describe_peak()}"
    else:
        at = (t[peak["peak_frame"]], peak["peak_pct"])
        ax.plot(*at, "o", color="black")
        ax.annotate(f"peak GLS {result.describe_peak()}", at, textcoords="offset points", xytext=(6, -12),
                    fontsize=8)
    if spans:
        flagged = np.flatnonzero(result.unmeasured).tolist()
        listed = ", ".join(map(str, flagged[:MAX_LISTED])) + (", ..." if len(flagged) > MAX_LISTED else "")
        unmeasured += (f"\ngrey: frame{'s' * (len(flagged) > 1)} {listed} measure{'s' * (len(flagged) == 1)} no "
                       "motion (no signal, or unlike the reference frame)")
    for axis in (ax, ax_volume):
        for start, end in spans:
            axis.axvspan(start, end, color=UNMEASURED_COLOUR, alpha=0.6, linewidth=0, zorder=0)
        axis.axvline(t[result.es_index], color="grey", linestyle=":", linewidth=1)
        axis.set_xlabel(time_title)
        axis.grid(alpha=0.3)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_ylabel("longitudinal strain (%)")
    ax.set_title(f"{result.view or 'apical view'}: longitudinal strain (ES dotted){unmeasured}", fontsize=10)
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    if result.spacing_known:
        ax_volume.plot(t, result.lv_volume, color="tab:red", linewidth=2)
        ax_volume.set_ylabel("LV volume (ml)")
    else:
        ax_volume.plot(t, 100.0 * result.lv_volume / result.lv_volume[result.ed_index], color="tab:red",
                       linewidth=2)
        ax_volume.set_ylabel(f"LV volume (% of EDV; {NO_SPACING})")
    ax_volume.set_title(f"{textwrap.fill(result.describe_volumes(), 40)}\n(single-plane method of discs)",
                        fontsize=10)
    fig.tight_layout()
    return _save(fig, path, overwrite)


def save_strain_map(seq: EchoSequence, result: StrainResult, path: str | os.PathLike, *,
                    frame: int | None = None, overwrite: bool = False) -> Path:
    """PNG: frame ``frame`` (default: peak GLS) with the tracked contours, and the longitudinal and
    transverse strain maps of that frame (relative to ED) on the grid of the frame tracked from;
    axes in pixels when the pixel size is unknown."""
    if frame is None:
        frame = result.peaks()["GLS endocardial"]["peak_frame"]
        frame = result.es_index if frame is None else frame  # no peak measured: ES
    extent = frame_extent(seq)
    vmin, vmax = np.percentile(seq.frames, [0.5, 99.5])
    reference = seq.frames[result.tracked_from]
    when = (f"t = {result.time_from_ed[frame] * 1000:.0f} ms from ED" if result.frame_times_known
            else f"{frame - result.ed_index:+d} frames from ED")
    panels = [(result.longitudinal_map[frame], LONGITUDINAL_RANGE, "longitudinal strain (%)"),
              (result.transverse_map[frame], TRANSVERSE_RANGE, "transverse strain (%)")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    axes[0].imshow(seq.frames[frame], cmap="gray", vmin=vmin, vmax=vmax, extent=extent)
    for contour, style in ((result.endo_contour[frame], "-"), (result.mid_contour[frame], "--")):
        axes[0].plot(contour[:, 0], contour[:, 1], style, color="yellow", linewidth=1)
    axes[0].set_title(f"frame {frame}, {when}: tracked contours", fontsize=9)
    for ax, (strain_map, limit, title) in zip(axes[1:], panels):
        ax.imshow(reference, cmap="gray", vmin=vmin, vmax=vmax, extent=extent)
        image = ax.imshow(strain_map, cmap=STRAIN_COLOURS, vmin=-limit, vmax=limit, extent=extent,
                          interpolation="nearest")
        ax.plot(result.myocardium.endo[:, 0], result.myocardium.endo[:, 1], color="black", linewidth=0.6)
        ax.set_title(f"{title} at frame {frame}, on frame {result.tracked_from}", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    (x0, y0), (x1, y1) = result.myocardium.endo.min(axis=0) - 25, result.myocardium.endo.max(axis=0) + 25
    unit = "mm" if result.spacing_known else f"pixels; {NO_SPACING}"
    for ax in axes:
        ax.set_xlim(max(x0, extent[0]), min(x1, extent[1]))
        ax.set_ylim(min(y1, extent[2]), max(y0, extent[3]))
        ax.set_xlabel(f"x ({unit})", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel(f"depth y ({unit})", fontsize=8)
    fig.tight_layout()
    return _save(fig, path, overwrite)


def save_segment_diagram(result: StrainResult, path: str | os.PathLike, *,
                         overwrite: bool = False) -> Path:
    """PNG: the six segments along the ED mid-wall line coloured by peak strain, with names,
    peak values and tracking quality scores; GLS and EF in the middle. Segments with unreliable
    tracking (:meth:`.result.StrainResult.unreliable_segments`) are drawn grey, labelled
    "unreliable", and their count is written under GLS and EF, which they enter."""
    peaks = result.peaks()
    unreliable = result.unreliable_segments()
    mid, n = result.myocardium.mid, result.myocardium.points_per_segment
    cmap = plt.get_cmap(STRAIN_COLOURS)
    norm = matplotlib.colors.Normalize(-LONGITUDINAL_RANGE, LONGITUDINAL_RANGE)
    fig, ax = plt.subplots(figsize=(6.4, 6.4))
    for k, name in enumerate(result.segment_names):
        piece = mid[k * n:(k + 1) * n + 1]
        value = peaks[name]["peak_pct"]
        poor = k in unreliable
        colour = UNRELIABLE_COLOUR if poor or not np.isfinite(value) else cmap(norm(value))
        ax.add_collection(LineCollection([piece], colors=[colour], linewidths=26, capstyle="butt"))
        centre = piece[n // 2]
        outward = centre - mid.mean(axis=0)
        # the label sits LABEL_OFFSET points beside the wall's centre line (the band is 26 points wide),
        # on the outer side, and grows away from the ring
        left = outward[0] < 0
        label = f"{name}\n{percent_text(value)}  (q {result.quality.score[k]:.2f})" + ("\nunreliable" if poor else "")
        ax.annotate(label, centre,
                    xytext=(-LABEL_OFFSET if left else LABEL_OFFSET, 0), textcoords="offset points",
                    ha="right" if left else "left", va="center", fontsize=8,
                    color="firebrick" if poor else "black")
        ax.text(*centre, f"{value:+.0f}" if np.isfinite(value) else "-", ha="center", va="center", fontsize=9,
                fontweight="bold")
    base, apex = result.myocardium.long_axis
    ef = f"EF {result.ef:.0f} %" if np.isfinite(result.ef) else "EF not measured"
    ax.text(*(0.5 * (base + apex)), f"GLS {percent_text(peaks['GLS endocardial']['peak_pct'])}\n{ef}",
            ha="center", va="center", fontsize=12, fontweight="bold")
    if unreliable:
        ax.text(*(0.5 * (base + apex)), f"\n\n\n{len(unreliable)} of {len(result.segment_names)} "
                "segments\nunreliable (tracking quality)", ha="center", va="top", fontsize=9,
                color="firebrick")
    lo, hi = mid.min(axis=0) - 30, mid.max(axis=0) + 30
    ax.set_xlim(lo[0] - 30, hi[0] + 30)  # room for the labels beside the walls
    ax.set_ylim(hi[1], lo[1])  # depth down, as on the echo
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"{result.view or 'apical view'}: peak systolic longitudinal strain per segment "
                 "(image orientation)", fontsize=10)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.04, pad=0.02,
                 label="peak strain (%)")
    fig.tight_layout()
    return _save(fig, path, overwrite)
