"""Strain, volumes and quality on analytic deformations with exact answers (issue 5).

The grid has anisotropic pixels (0.8 x 0.6 mm), so any pixel / mm mix-up breaks the exact answers.
"""

import numpy as np
import pytest

from EchoRegistrationLib.sequence import EchoDataError, EchoSequence
from EchoRegistrationLib.strain import (compute_strain, myocardium_from_labels,
                                        myocardium_from_landmarks, result_from_displacement)
from EchoRegistrationLib.strain.contours import segment_names, signed_peak
from EchoRegistrationLib.strain.quality import curve_jitter, quality_score, segment_folding
from EchoRegistrationLib.strain.tensors import (deformation_gradient, directional_green_lagrange,
                                                engineering_from_green_lagrange, green_lagrange)
from EchoRegistrationLib.strain.volumes import biplane_volume, disc_diameters, single_plane_volume

SPACING = (0.8, 0.6)
SHAPE = (128, 128)
LANDMARKS = np.array([[30.0, 60.0], [50.0, 12.0], [72.0, 58.0]])  # annulus, apex, annulus (mm)


def positions():
    rows, cols = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    return np.stack([cols * SPACING[0], rows * SPACING[1]], axis=-1)


def affine_fields(matrices, translations, centre=(50.0, 40.0)):
    """(T, H, W, 2) mm fields of x -> A (x - c) + c + t, frame 0 the identity."""
    rel = positions() - np.asarray(centre)
    fields = [np.zeros(SHAPE + (2,))]
    for a, t in zip(matrices, translations):
        fields.append(rel @ (np.asarray(a) - np.eye(2)).T + np.asarray(t))
    return np.stack(fields).astype(np.float32)


def rotation(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


@pytest.fixture(scope="module")
def sequence():
    # a linear ramp: every affine map keeps it a ramp, so the frames warped by the analytic fields stay like the
    # reference (NCC over 0.3) and the fields count as measurements of motion (RegistrationResult.unmeasured)
    rows, cols = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    frames = np.repeat((cols + 0.5 * rows)[None], 3, axis=0).astype(np.float32)
    return EchoSequence(frames=frames, spacing=SPACING, frame_times=[0.0, 0.05, 0.1], ed_index=0,
                        es_index=2, metadata={"view": "A4C"})


@pytest.fixture(scope="module")
def myocardium():
    return myocardium_from_landmarks(LANDMARKS, SHAPE, SPACING, wall_width=8.0)


def strain_of(sequence, myocardium, fields):
    return compute_strain(sequence, result_from_displacement(sequence, fields, 0), myocardium)


# ---------------------------------------------------------------------- tensors
def test_uniform_stretch_gives_the_known_tensor_and_directional_strains():
    stretch = 1.2  # along x, then turned by 0.4 rad: Lagrangian strain ignores the rotation
    fields = affine_fields([rotation(0.4) @ np.diag([stretch, 1.0])], [(0.0, 0.0)])
    mask = np.zeros(SHAPE, dtype=bool)
    mask[::7, ::5] = True
    tensor = green_lagrange(deformation_gradient(fields, SPACING, mask))
    expected = np.diag([(stretch ** 2 - 1) / 2, 0.0])
    assert np.abs(tensor[1] - expected).max() < 1e-5 and np.abs(tensor[0]).max() < 1e-12  # float32 fields
    diagonal = np.full((mask.sum(), 2), np.sqrt(0.5))
    along = engineering_from_green_lagrange(directional_green_lagrange(tensor, diagonal))
    assert along[1] == pytest.approx(np.sqrt((stretch ** 2 + 1) / 2) - 1, abs=1e-5)


@pytest.mark.parametrize("matrix, shift", [(rotation(0.3), (0.0, 0.0)), (np.eye(2), (4.0, -7.5)),
                                           (rotation(-0.5), (3.0, 2.0))])
def test_rotation_and_translation_have_zero_strain(sequence, myocardium, matrix, shift):
    result = strain_of(sequence, myocardium, affine_fields([matrix, matrix], [shift, shift]))
    for curve in (result.gls_endo, result.gls_mid, *result.segmental.T):
        assert np.abs(curve).max() < 1e-4
    for strain_map in (result.longitudinal_map, result.transverse_map, *result.green_lagrange_maps()):
        assert np.nanmax(np.abs(strain_map)) < 1e-3  # % : float32 fields, 1e-5 strain
    assert result.lv_volume == pytest.approx(result.lv_volume[0], rel=1e-6)
    assert result.lv_area == pytest.approx(result.lv_area[0], rel=1e-6)
    assert result.ef == pytest.approx(0.0, abs=1e-4)


def test_uniform_scaling_gives_exact_gls_maps_and_ef(sequence, myocardium):
    scales = (0.95, 0.85)
    result = strain_of(sequence, myocardium, affine_fields([k * np.eye(2) for k in scales], [(1, -2)] * 2))
    expected = 100 * (np.array([1.0, *scales]) - 1)
    assert result.gls_endo == pytest.approx(expected, abs=1e-4)
    assert result.gls_mid == pytest.approx(expected, abs=1e-4)
    assert result.segmental == pytest.approx(np.repeat(expected[:, None], 6, axis=1), abs=1e-4)
    for strain_map in (result.longitudinal_map, result.transverse_map):
        inside = strain_map[:, myocardium.mask]
        assert np.abs(inside - expected[:, None]).max() < 1e-3
        assert np.isnan(strain_map[:, ~myocardium.mask]).all()
    assert result.lv_area / result.lv_area[0] == pytest.approx(np.array([1.0, *scales]) ** 2, rel=1e-5)
    assert result.ef == pytest.approx(100 * (1 - 0.85 ** 3), abs=1e-3)
    assert (result.es_index, result.frames.es_source) == (2, "given by the file")
    peak = result.peaks()["GLS endocardial"]
    assert peak["peak_pct"] == pytest.approx(-15.0, abs=1e-4) and peak["time_to_peak_s"] == 0.1


def test_strain_is_relative_to_ed_even_when_tracked_from_another_frame(sequence, myocardium):
    fields = affine_fields([np.eye(2), 0.9 * np.eye(2)], [(0, 0)] * 2)
    fields[0] = affine_fields([1.1 * np.eye(2)], [(0, 0)])[1]  # frame 0 (ED) is 10 % larger
    registration = result_from_displacement(sequence, fields, 1)  # myocardium drawn on frame 1
    result = compute_strain(sequence, registration, myocardium)
    assert (result.reference, result.ed_index, result.tracked_from) == (0, 0, 1)
    expected = 100 * (np.array([1.1, 1.0, 0.9]) / 1.1 - 1)  # [0, -9.09, -18.18] % from ED
    assert result.gls_endo == pytest.approx(expected, abs=1e-4)
    assert result.segmental == pytest.approx(np.repeat(expected[:, None], 6, axis=1), abs=1e-4)
    for strain_map in (result.longitudinal_map, result.transverse_map):
        assert np.abs(strain_map[:, myocardium.mask] - expected[:, None]).max() < 1e-3
    assert result.ef == pytest.approx(100 * (1 - (0.9 / 1.1) ** 3), abs=1e-3)
    peak = result.peaks()["GLS endocardial"]
    assert peak["peak_pct"] == pytest.approx(-18.1818, abs=1e-3) and peak["time_to_peak_s"] == 0.1
    user_set = compute_strain(sequence, registration, myocardium, reference=1)
    assert user_set.gls_endo == pytest.approx([10.0, 0.0, -10.0], abs=1e-4)
    assert user_set.frames.reference_source == "set by the user" and user_set.ed_index == 0


def test_stretch_across_the_image_matches_the_wall_direction(sequence, myocardium):
    stretch = 1.1
    result = strain_of(sequence, myocardium, affine_fields([np.diag([stretch, 1.0])] * 2, [(0, 0)] * 2))
    d = myocardium.direction[myocardium.mask]
    along = np.hypot(stretch * d[:, 0], d[:, 1]) - 1
    across = np.hypot(stretch * d[:, 1], d[:, 0]) - 1
    assert np.abs(result.longitudinal_map[1][myocardium.mask] - 100 * along).max() < 1e-3
    assert np.abs(result.transverse_map[1][myocardium.mask] - 100 * across).max() < 1e-3
    gl_long = result.green_lagrange_maps()[0][1][myocardium.mask]
    assert np.abs(gl_long - 100 * (along + along ** 2 / 2)).max() < 1e-3
    centre = np.array([50.0, 40.0])
    moved = (myocardium.endo - centre) * [stretch, 1.0] + centre
    length = lambda c: np.linalg.norm(np.diff(c, axis=0), axis=1).sum()  # noqa: E731
    assert result.gls_endo[1] == pytest.approx(100 * (length(moved) / length(myocardium.endo) - 1), abs=1e-4)


# ---------------------------------------------------------------------- volumes
def half_ellipse(semi_long, semi_short, tilt=0.0, offset=(0.0, 0.0), n=801):
    """Contour annulus -> apex -> annulus of a half ellipse cut at its centre (the base)."""
    psi = np.linspace(-np.pi / 2, np.pi / 2, n)
    local = np.stack([semi_short * np.sin(psi), -semi_long * np.cos(psi)], axis=1)
    return local @ rotation(tilt).T + np.asarray(offset)


def test_method_of_discs_on_ellipsoids():
    a, b, c = 80.0, 25.0, 20.0
    contour = half_ellipse(a, b, tilt=0.4, offset=(60, 90))
    diameters, length = disc_diameters(contour)
    assert length == pytest.approx(a, rel=1e-6)
    levels = (np.arange(20) + 0.5) / 20  # from the base towards the apex
    assert diameters == pytest.approx(2 * b * np.sqrt(1 - levels ** 2), rel=1e-4)
    # 20 discs (midpoint rule) on a half ellipsoid: within 0.1 % of 2/3 pi a b c
    assert single_plane_volume(contour) == pytest.approx(2 / 3 * np.pi * a * b * b / 1000, rel=1e-3)
    assert biplane_volume(contour, half_ellipse(a, c)) == pytest.approx(2 / 3 * np.pi * a * b * c / 1000,
                                                                       rel=1e-3)


# ---------------------------------------------------------------------- quality
def test_jitter_is_roughness_beyond_the_global_curve():
    times = np.linspace(0.0, 0.4, 9)
    global_curve = -20 * np.sin(np.pi * times / 0.8) ** 2
    alternating = 0.5 * (-1.0) ** np.arange(9)
    curves = np.stack([3 * global_curve, global_curve + 4 * times, alternating], axis=1)
    jitter = curve_jitter(curves, np.zeros(9), times)
    assert jitter[2] == pytest.approx(1.0)  # second difference of +-0.5 alternation is 1.0
    assert jitter[0] > 0.1
    with_global = curve_jitter(curves[:, :2], global_curve, times)
    assert with_global[0] == pytest.approx(0.0, abs=1e-12)
    assert with_global[1] < 0.05


def test_quality_score_terms_and_folding():
    score = quality_score(np.array([0.9, 0.9, 0.9, -0.2]), np.array([0.0, 0.025, 0.0, 0.0]),
                          np.array([0.0, 0.0, 1.0, 0.0]))
    assert score == pytest.approx([0.9, 0.45, 0.45, 0.0])
    mirror = np.tile(np.diag([-1.0, 1.0]), (2, 4, 1, 1))  # (T, P, 2, 2): det F = -1
    mirror[0] = np.eye(2)
    assert segment_folding(mirror, np.array([0, 1, 1, 2]), 3) == pytest.approx([1.0, 1.0, 1.0])


def test_signed_peak_keeps_the_sign_of_the_largest_excursion():
    assert signed_peak(np.array([0.0, -3.0, -18.0, -2.0])) == (-18.0, 2)
    assert signed_peak(np.array([0.0, -1.0, 4.0, 2.0])) == (4.0, 2)


# ---------------------------------------------------------------------- myocardium and errors
def ventricle_labels(open_base=True):
    """A label map with an elliptical cavity (1) inside a myocardial band (2) and an atrium (3)."""
    rel = positions() - [50.0, 45.0]
    inner = (rel[..., 0] / 14) ** 2 + (rel[..., 1] / 30) ** 2 < 1
    outer = (rel[..., 0] / 22) ** 2 + (rel[..., 1] / 38) ** 2 < 1
    labels = np.where(outer, 2, 0) + np.where(inner, -1, 0)
    if open_base:
        below = rel[..., 1] > 20
        labels[below & outer] = 0
        labels[below & inner] = 3
    return labels.astype(np.uint8)


def test_label_map_contours_first_wall_on_the_image_left():
    mirrored_centre = (SHAPE[1] - 1) * SPACING[0] - 50.0
    for labels, centre in ((ventricle_labels(), 50.0), (ventricle_labels()[:, ::-1], mirrored_centre)):
        myo = myocardium_from_labels(labels, SPACING)
        first, apex, second = myo.landmarks
        assert first[0] < apex[0] < second[0]
        assert apex[1] == pytest.approx(45.0 - 30.0, abs=0.4)
        assert first[1] == pytest.approx(45.0 + 20.0, abs=0.5) and second[1] == pytest.approx(65.0, abs=0.5)
        assert np.array_equal(myo.mask, labels == 2)
        assert set(np.unique(myo.segment_map[myo.mask])) == set(range(6))
        assert (myo.segment_map[~myo.mask] == -1).all()
        # at mid level the wall runs from 14 to 22 mm beside the centre: mid-wall 18 mm beside it
        for k, side in ((slice(0, 30), -1), (slice(91, 121), 1)):
            level = np.argmin(np.abs(myo.mid[k, 1] - 45.0))
            assert myo.mid[k][level, 0] == pytest.approx(centre + side * 18.0, abs=0.5)  # pixels 0.8 mm
            assert myo.endo[k][np.argmin(np.abs(myo.endo[k, 1] - 45.0)), 0] == pytest.approx(
                centre + side * 14.0, abs=0.5)


def test_bad_label_maps_and_landmarks_are_clear_errors(sequence):
    with pytest.raises(EchoDataError, match=r"gt\.nii: the label map has no myocardium \(code 2\)"):
        myocardium_from_labels(np.where(ventricle_labels() == 2, 0, ventricle_labels()), SPACING,
                               source="gt.nii")
    with pytest.raises(EchoDataError, match="cannot find the mitral annulus"):
        myocardium_from_labels(ventricle_labels(open_base=False), SPACING)
    with pytest.raises(EchoDataError, match="annulus, apex, annulus"):
        myocardium_from_landmarks(LANDMARKS[[1, 0, 2]], SHAPE, SPACING)
    with pytest.raises(EchoDataError, match="outside the image"):
        myocardium_from_landmarks(LANDMARKS * [1, 2], SHAPE, SPACING)
    with pytest.raises(EchoDataError, match="no myocardium: the sequence has no labels"):
        identity = affine_fields([np.eye(2)] * 2, [(0, 0)] * 2)
        compute_strain(sequence, result_from_displacement(sequence, identity, 0))
    with pytest.raises(ValueError, match="does not match"):
        result_from_displacement(sequence, np.zeros((2,) + SHAPE + (2,)), 0)


def test_segment_names_by_view():
    assert segment_names("A4C")[0] == "basal inferoseptal"
    assert segment_names("4CH")[-1] == "basal anterolateral"
    assert segment_names("2ch") == ("basal inferior", "mid inferior", "apical inferior",
                                    "apical anterior", "mid anterior", "basal anterior")
    assert segment_names(None)[0] == "basal left"
