"""The left-ventricular myocardium at the reference (ED) frame of an apical view.

Two ways to get it, as in vendor speckle-tracking software:

* :func:`myocardium_from_labels`: from a CAMUS label map (1 LV cavity, 2 myocardium). The
  endocardial border is the cavity / myocardium interface; it is open at the base, where the
  cavity meets the left atrium or the background, and its two ends, where cavity, myocardium and
  atrium (or background) meet, are the mitral annulus points. The apex is the border point
  farthest from the annulus midpoint. The mid-wall line lies halfway between the endocardial and
  the epicardial border along the outward normal.
* :func:`myocardium_from_landmarks`: from the two mitral annulus points and the endocardial apex
  plus a wall width (default 10 mm): a truncated-ellipse template through the three points (each
  wall an elliptical arc, perpendicular to the long axis at the apex and widest at
  ``TEMPLATE_CENTRE_FRACTION`` of the apex -> annulus length, the usual LV shape) and a band of
  that width outside it.

Orientation (the simulator's and the ASE standard display, apex at the top): the FIRST wall is the
one on the image left of the long axis: inferoseptal in A4C, inferior in A2C. Contours run from
the first annulus point through the apex to the second, with ``points_per_segment`` intervals per
segment and segment boundaries at equal thirds of each wall's arc length. The mid-wall line ends
where it crosses the line through the two annulus points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..sequence import LABEL_LV, LABEL_MYOCARDIUM, EchoDataError
from .polylines import (left_normals, nearest_vertex, resample, resample_step, smooth_along,
                        tangents)
from .raster import gaussian_blur, iso_lines, polygon_mask
from .sampling import sample_image

DEFAULT_WALL_WIDTH = 10.0        # mm, landmark workflow
POINTS_PER_SEGMENT = 20          # contour intervals per segment: 6 x 20 + 1 = 121 points
TEMPLATE_CENTRE_FRACTION = 0.6   # landmark template: widest at 60 % of the apex -> annulus length
LABEL_SMOOTHING = 0.6            # mm, Gaussian sigma applied to label masks before iso-contouring
DENSE_STEP = 0.5                 # mm, working resolution of contours
BORDER_SMOOTHING = 2.0           # mm, half-width of the moving average along a traced border
THICKNESS_SMOOTHING = 5.0        # mm, half-width of the moving average of the wall thickness
MAX_WALL = 30.0                  # mm, longest ray searched for the epicardium
ANNULUS_SEARCH = 3.0             # mm, label junctions this close to a border end are the annulus
APEX_TOLERANCE = 0.25            # mm, flat top of the distance from the annulus midpoint
ENDO_TOUCH = 0.25                # blurred myocardium level that marks a cavity border as endocardial
UPSAMPLING = 4                   # finer mid-wall line for the per-pixel wall frame


@dataclass(frozen=True, eq=False)
class Myocardium:
    """Myocardial region, contours and wall frame at the reference frame.

    Attributes:
        endo, mid: (6 n + 1, 2) mm endocardial and mid-wall contours, first annulus point (image
            left wall) -> apex (index 3 n) -> second annulus point; n = ``points_per_segment``.
        mask: (H, W) bool myocardial pixels.
        segment_map: (H, W) int8 segment 0-5 of each myocardial pixel (nearest mid-wall point),
            -1 elsewhere; in the order of :func:`~.contours.segment_names`.
        direction: (H, W, 2) float64 unit longitudinal direction (mid-wall tangent) at each
            myocardial pixel, 0 elsewhere; the transverse direction is it turned by 90 degrees.
        spacing: (sx, sy) mm.
        points_per_segment: n.
        source: "labels" or "landmarks".
    """

    endo: np.ndarray
    mid: np.ndarray
    mask: np.ndarray
    segment_map: np.ndarray
    direction: np.ndarray
    spacing: tuple[float, float]
    points_per_segment: int
    source: str

    @property
    def landmarks(self) -> np.ndarray:
        """(3, 2) mm: first annulus point, apex, second annulus point."""
        return self.endo[[0, 3 * self.points_per_segment, -1]].copy()

    @property
    def long_axis(self) -> tuple[np.ndarray, np.ndarray]:
        """(annulus midpoint, apex), each (2,) mm."""
        return 0.5 * (self.endo[0] + self.endo[-1]), self.endo[3 * self.points_per_segment].copy()


# ---------------------------------------------------------------------- shared assembly
def _oriented(endo: np.ndarray, apex: int) -> tuple[np.ndarray, int]:
    """The (M, 2) contour and its apex index, reversed when the first wall is not on the image
    left of the long axis."""
    base = 0.5 * (endo[0] + endo[-1])
    axis = base - endo[apex]
    across = np.array([axis[1], -axis[0]])  # towards image right for an upright axis
    if (endo[apex // 2] - endo[apex]) @ across <= 0:
        return endo, apex
    return endo[::-1].copy(), len(endo) - 1 - apex


def _split_resample(dense: np.ndarray, apex: int, n: int) -> np.ndarray:
    """(6 n + 1, 2): each wall (annulus -> apex, apex -> annulus) resampled to 3 n intervals."""
    first = resample(dense[:apex + 1], 3 * n + 1)
    second = resample(dense[apex:], 3 * n + 1)
    return np.concatenate([first, second[1:]])


def _wall_frame(mask: np.ndarray, mid: np.ndarray, spacing: tuple[float, float],
                n: int) -> tuple[np.ndarray, np.ndarray]:
    """Segment index (H, W) int8 and longitudinal unit direction (H, W, 2) of the mask pixels,
    from the nearest point of the (upsampled) mid-wall line."""
    fine_index = np.arange(UPSAMPLING * (len(mid) - 1) + 1) / UPSAMPLING
    fine = np.stack([np.interp(fine_index, np.arange(len(mid)), mid[:, k]) for k in (0, 1)], axis=1)
    rows, cols = np.nonzero(mask)
    pixels = np.stack([cols * spacing[0], rows * spacing[1]], axis=1)
    nearest = nearest_vertex(pixels, fine)
    segment_map = np.full(mask.shape, -1, dtype=np.int8)
    segment_map[rows, cols] = np.minimum(fine_index[nearest] // n, 5).astype(np.int8)
    direction = np.zeros(mask.shape + (2,))
    direction[rows, cols] = tangents(fine)[nearest]
    return segment_map, direction


def _cut_at_annulus(mid: np.ndarray, endo: np.ndarray, apex: int) -> tuple[np.ndarray, int]:
    """The mid-wall line (point i offset from endocardial point i) ending where it crosses the
    line through the two annulus points, as the myocardial region does; returns it and the index
    of the apex in it."""
    chord = endo[-1] - endo[0]
    normal = np.array([-chord[1], chord[0]])
    side = (mid - endo[0]) @ normal
    inside = np.sign(side) == np.sign((endo[apex] - endo[0]) @ normal)
    first = int(np.argmax(inside[:apex + 1]))
    last = len(mid) - 1 - int(np.argmax(inside[apex:][::-1]))
    ends = []
    for outer, inner in ((first - 1, first), (last + 1, last)):
        if 0 <= outer < len(mid):  # interpolate the crossing of the annulus line
            f = side[inner] / (side[inner] - side[outer])
            ends.append([mid[inner] + f * (mid[outer] - mid[inner])])
        else:
            ends.append(np.empty((0, 2)))
    cut = np.concatenate([ends[0], mid[first:last + 1], ends[1]])
    return cut, apex - first + len(ends[0])


def _assemble(endo_dense: np.ndarray, mid_dense: np.ndarray, apex: int, mask: np.ndarray,
              spacing: tuple[float, float], n: int, source: str) -> Myocardium:
    mid_dense, mid_apex = _cut_at_annulus(mid_dense, endo_dense, apex)
    endo, mid = _split_resample(endo_dense, apex, n), _split_resample(mid_dense, mid_apex, n)
    segment_map, direction = _wall_frame(mask, mid, spacing, n)
    return Myocardium(endo=endo, mid=mid, mask=mask, segment_map=segment_map, direction=direction,
                      spacing=spacing, points_per_segment=n, source=source)


def _checked_spacing(spacing: Sequence[float]) -> tuple[float, float]:
    sx, sy = (float(v) for v in spacing)
    if not (sx > 0 and sy > 0 and np.isfinite(sx) and np.isfinite(sy)):
        raise ValueError(f"spacing must be positive (sx, sy) mm, got {spacing!r}")
    return sx, sy


# ---------------------------------------------------------------------- from a label map
def _blurred(mask: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """(H, W) float64 indicator of ``mask`` smoothed by a Gaussian of ``LABEL_SMOOTHING`` mm."""
    sigma = (LABEL_SMOOTHING / spacing[0], LABEL_SMOOTHING / spacing[1])
    return gaussian_blur(mask, sigma)


def _cavity_border(cavity: np.ndarray, spacing: tuple[float, float], source: str) -> np.ndarray:
    """(M, 2) mm closed border of the LV cavity (the longest 0.5 iso-line), without repeated end."""
    lines = [line for line in iso_lines(_blurred(cavity, spacing), spacing, 0.5) if len(line) > 3]
    if not lines:
        raise EchoDataError(source, "the LV cavity (label 1) is too small to trace")
    border = max(lines, key=len)
    if np.allclose(border[0], border[-1]):
        border = border[:-1]
    return border


def _longest_run(flags: np.ndarray) -> tuple[int, int]:
    """(start, length) of the longest circular run of True in ``flags`` (not all True)."""
    shift = int(np.argmin(flags))  # a False: no run wraps past it
    rolled = np.roll(flags, -shift).astype(np.int8)
    edges = np.diff(np.concatenate([[0], rolled, [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    k = int(np.argmax(ends - starts))
    return (int(starts[k]) + shift) % len(flags), int(ends[k] - starts[k])


def _junctions(labels: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """(K, 2) mm pixel corners where the LV cavity, the myocardium and a third region (atrium or
    background) meet: the candidate mitral annulus points of a label map."""
    quads = np.stack([labels[:-1, :-1], labels[:-1, 1:], labels[1:, :-1], labels[1:, 1:]])
    cavity = (quads == LABEL_LV).any(axis=0)
    myocardium = (quads == LABEL_MYOCARDIUM).any(axis=0)
    other = ((quads != LABEL_LV) & (quads != LABEL_MYOCARDIUM)).any(axis=0)
    rows, cols = np.nonzero(cavity & myocardium & other)
    return np.stack([(cols + 0.5) * spacing[0], (rows + 0.5) * spacing[1]], axis=1)


def _snapped_to_annulus(endo: np.ndarray, junctions: np.ndarray) -> np.ndarray:
    """The endocardial border ending exactly at the label junctions: each end is replaced by the
    mean of the junctions within ``ANNULUS_SEARCH`` mm of it, and the border is cut at its point
    nearest that junction (the iso-line rounds the corner off)."""
    half = len(endo) // 2
    cut = [0, len(endo) - 1]
    ends = [endo[0], endo[-1]]
    for k, end in enumerate(ends):
        near = junctions[np.linalg.norm(junctions - end, axis=1) <= ANNULUS_SEARCH]
        if len(near):
            ends[k] = near.mean(axis=0)
            side = endo[:half] if k == 0 else endo[half:]
            cut[k] = int(np.argmin(np.linalg.norm(side - ends[k], axis=1))) + (0 if k == 0 else half)
    return np.concatenate([ends[0][None], endo[cut[0] + 1:cut[1]], ends[1][None]])


def _apex_index(endo: np.ndarray) -> int:
    """Index of the apex of an (M, 2) border running annulus -> annulus: the point farthest from
    the annulus midpoint, taken as the middle of the run of points within ``APEX_TOLERANCE`` mm of
    that largest distance (the maximum is flat; the plain arg-max jitters with the pixels)."""
    distance = np.linalg.norm(endo - 0.5 * (endo[0] + endo[-1]), axis=1)
    top = int(np.argmax(distance))
    near = distance >= distance[top] - APEX_TOLERANCE
    low = top - int(np.argmin(near[top::-1])) + 1 if not near[:top + 1].all() else 0
    high = top + int(np.argmin(near[top:])) - 1 if not near[top:].all() else len(endo) - 1
    return (low + high) // 2


def _mid_wall(endo: np.ndarray, myocardium: np.ndarray, spacing: tuple[float, float],
              source: str) -> np.ndarray:
    """Mid-wall points halfway along the outward normal of each endocardial point to where the
    ray leaves the (blurred) myocardium, the thickness smoothed along the wall."""
    normals = left_normals(endo)  # outward for a contour oriented by _oriented
    distances = np.arange(DENSE_STEP, MAX_WALL, 0.5 * DENSE_STEP)
    rays = endo[:, None, :] + distances[None, :, None] * normals[:, None, :]
    inside = sample_image(myocardium, rays, spacing) >= 0.5
    exited = ~inside & (np.cumsum(inside, axis=1) > 0)
    found = exited.any(axis=1)
    if not found.any():
        raise EchoDataError(source, "the myocardium (label 2) is too thin to find the mid-wall line")
    exits = distances[np.argmax(exited, axis=1)]
    index = np.arange(len(endo))
    thickness = np.interp(index, index[found], exits[found])  # rays that never crossed the wall
    thickness = smooth_along(thickness, int(round(THICKNESS_SMOOTHING / DENSE_STEP)))
    return endo + 0.5 * thickness[:, None] * normals


def myocardium_from_labels(label_map: np.ndarray, spacing: Sequence[float], *,
                           points_per_segment: int = POINTS_PER_SEGMENT,
                           source: str = "label map") -> Myocardium:
    """The myocardium of a CAMUS label map (H, W) (1 LV cavity, 2 myocardium, 3 left atrium).

    Args:
        label_map: (H, W) integer codes at the reference frame.
        spacing: (sx, sy) mm.
        points_per_segment: contour intervals per segment.
        source: name for error messages (the label file).

    Raises:
        EchoDataError: no cavity or myocardium, or a cavity enclosed by myocardium all round (no
            open base, so no mitral annulus).
    """
    spacing = _checked_spacing(spacing)
    labels = np.asarray(label_map)
    if labels.ndim != 2:
        raise EchoDataError(source, f"expected one (H, W) label map, got shape {labels.shape}")
    cavity, myocardium = labels == LABEL_LV, labels == LABEL_MYOCARDIUM
    for name, code, region in (("LV cavity", LABEL_LV, cavity), ("myocardium", LABEL_MYOCARDIUM, myocardium)):
        if not region.any():
            raise EchoDataError(source, f"the label map has no {name} (code {code}); codes present: "
                                        f"{sorted(np.unique(labels).tolist())}")
    border = resample_step(_cavity_border(cavity, spacing, source), DENSE_STEP)[:-1]
    myocardium_level = _blurred(myocardium, spacing)
    endocardial = sample_image(myocardium_level, border, spacing) >= ENDO_TOUCH
    if endocardial.all() or not endocardial.any():
        raise EchoDataError(source, "cannot find the mitral annulus: the LV cavity must touch the "
                                    "myocardium along its wall and the atrium or background at its base")
    start, length = _longest_run(endocardial)
    endo = _snapped_to_annulus(np.roll(border, -start, axis=0)[:length], _junctions(labels, spacing))
    endo = smooth_along(endo, int(round(BORDER_SMOOTHING / DENSE_STEP)))
    apex = _apex_index(endo)
    if not 0 < apex < len(endo) - 1:
        raise EchoDataError(source, "the endocardial border has no apex between the annulus points")
    endo, apex = _oriented(endo, apex)
    mid = _mid_wall(endo, myocardium_level, spacing, source)
    return _assemble(endo, mid, apex, myocardium, spacing, points_per_segment, "labels")


# ---------------------------------------------------------------------- from landmarks
def _template_wall(apex: np.ndarray, axis: np.ndarray, across: np.ndarray, annulus: np.ndarray,
                   n_points: int) -> np.ndarray:
    """(n_points, 2) elliptical arc from the apex to ``annulus``, perpendicular to the long axis
    at the apex, widest at ``TEMPLATE_CENTRE_FRACTION`` of the annulus level."""
    length, offset = (annulus - apex) @ axis, (annulus - apex) @ across
    semi_long = TEMPLATE_CENTRE_FRACTION * length
    end = np.arccos(1.0 - 1.0 / TEMPLATE_CENTRE_FRACTION)
    psi = np.linspace(0.0, end, n_points)
    s = semi_long * (1.0 - np.cos(psi))
    r = offset / np.sin(end) * np.sin(psi)
    return apex + s[:, None] * axis + r[:, None] * across


def myocardium_from_landmarks(landmarks: np.ndarray | Sequence[Sequence[float]],
                              shape: Sequence[int], spacing: Sequence[float], *,
                              wall_width: float = DEFAULT_WALL_WIDTH,
                              points_per_segment: int = POINTS_PER_SEGMENT,
                              source: str = "landmarks") -> Myocardium:
    """The myocardium from three endocardial landmarks and a wall width (vendor workflow).

    Args:
        landmarks: (3, 2) mm (x, y): first mitral annulus point, apex, second annulus point. The
            annulus points may be given in either order; the image-left wall becomes the first.
        shape: (H, W) of the reference frame in pixels.
        spacing: (sx, sy) mm.
        wall_width: myocardial thickness in mm; the region extends this far outside the template
            endocardium and the mid-wall line lies at half of it.
        points_per_segment: contour intervals per segment.
        source: name for error messages.

    Raises:
        EchoDataError: landmarks not (3, 2), outside the image, not ordered annulus, apex, annulus
            (the annulus must be the shortest side and lie beyond the apex), or a non-positive
            width.
    """
    spacing = _checked_spacing(spacing)
    points = np.asarray(landmarks, dtype=np.float64)
    h, w = (int(v) for v in shape)
    if points.shape != (3, 2) or not np.isfinite(points).all():
        raise EchoDataError(source, f"expected 3 points (x, y) in mm, got {np.asarray(landmarks).tolist()}")
    if not (np.isfinite(wall_width) and wall_width > 0):
        raise EchoDataError(source, f"wall width must be positive (mm), got {wall_width}")
    extent = np.array([(w - 1) * spacing[0], (h - 1) * spacing[1]])
    outside = [p.tolist() for p in points if (p < 0).any() or (p > extent).any()]
    if outside:
        raise EchoDataError(source, f"point(s) {outside} mm lie outside the image "
                                    f"(x 0..{extent[0]:.1f}, y 0..{extent[1]:.1f} mm)")
    first, apex, second = points
    base = 0.5 * (first + second)
    sides = np.linalg.norm([second - first, apex - first, apex - second], axis=1)
    axis = (base - apex) / max(np.linalg.norm(base - apex), 1e-12)
    if sides[0] >= sides[1:].min() or min((first - apex) @ axis, (second - apex) @ axis) <= 0:
        raise EchoDataError(source, "points must be annulus, apex, annulus, with the annulus the "
                                    f"shortest side and beyond the apex; got {points.tolist()}")
    across = np.array([axis[1], -axis[0]])
    dense = max(int(np.ceil(np.pi * sides.max() / DENSE_STEP)), 20)
    walls = [_template_wall(apex, axis, across, annulus, dense) for annulus in (first, second)]
    endo = np.concatenate([walls[0][::-1], walls[1][1:]])
    endo, apex_index = _oriented(endo, dense - 1)
    normals = left_normals(endo)
    outer = endo + wall_width * normals
    mask = polygon_mask(np.concatenate([endo, outer[::-1]]), (h, w), spacing)
    mid = endo + 0.5 * wall_width * normals
    return _assemble(endo, mid, apex_index, mask, spacing, points_per_segment, "landmarks")
