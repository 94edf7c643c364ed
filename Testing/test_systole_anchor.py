"""Tracking to the reference through one anchor frame in systole (spatial.pairs.systole_anchors,
dlir.inference.predict_anchored_fields, register_sequence(anchor=...))."""

import dataclasses

import numpy as np
import pytest
import torch

from EchoRegistrationLib.dlir.inference import predict_anchored_fields, predict_pair_fields
from EchoRegistrationLib.registration import register_sequence
from EchoRegistrationLib.spatial import compose
from EchoRegistrationLib.spatial.pairs import systole_anchors
from test_dlir import blob_sequence, constant_output, tiny_model


def test_frames_beyond_the_anchor_go_through_it_on_a_half_cycle():
    # ED -> ES over 6 frames: A = round(0.6 x 5) = 3; frames 4 and 5 through it
    assert systole_anchors(6, 0, 5, 0.6) == {1: 0, 2: 0, 3: 0, 4: 3, 5: 3}
    assert systole_anchors(6, 0, 5, 0.5) == {1: 0, 2: 0, 3: 2, 4: 2, 5: 2}  # round(2.5) = 2


def test_after_es_the_frames_near_the_returning_ed_are_direct():
    anchors = systole_anchors(20, 0, 9, 0.6)
    assert [t for t, a in anchors.items() if a == 5] == [6, 7, 8, 9, 10, 11, 12]  # (19 - t) / 10 > 0.6
    assert all(anchors[t] == 0 for t in (*range(1, 6), *range(13, 20)))


def test_a_later_reference_and_an_es_before_it():
    # reference 2, ES 7: A = 2 + round(0.6 x 5) = 5; frames before the reference and after ES direct
    assert systole_anchors(10, 2, 7, 0.6) == {0: 2, 1: 2, 3: 2, 4: 2, 5: 2, 6: 5, 7: 5, 8: 2, 9: 2}
    assert set(systole_anchors(10, 7, 3, 0.6).values()) == {7}  # ES before the reference: all direct
    assert systole_anchors(2, 0, 1, 0.6) == {1: 0}  # a pair is one direct registration
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        systole_anchors(6, 0, 5, 1.0)


def test_anchored_fields_are_the_anchor_pairs_composed():
    seq = dataclasses.replace(blob_sequence(n_frames=6, labels=False), ed_index=0, es_index=5)
    model = constant_output(tiny_model(working_size=24), 2.0, 4.0)  # one shift for every pair
    pairs = [(0, t) for t in range(1, 6)]
    anchored, anchor_frame = predict_anchored_fields(model, seq, pairs, 0.6, "cpu")
    assert anchor_frame == 3
    direct = predict_pair_fields(model, seq, pairs, "cpu")
    through = predict_pair_fields(model, seq, [(3, 4), (3, 5)], "cpu")
    torch.testing.assert_close(anchored[:3], direct[:3])  # frames 1-3: to the reference directly
    expected = compose(direct[[2, 2]], through, seq.spacing)  # frame 3's field, then 3 -> t
    torch.testing.assert_close(anchored[3:], expected)
    # a shift composed with itself: twice the shift (inside the frame, where nothing is clamped)
    torch.testing.assert_close(anchored[3:, :, 20:40, 15:30], 2 * direct[3:, :, 20:40, 15:30])
    # no ES known: as direct registration
    unknown = dataclasses.replace(seq, es_index=None)
    fields, anchor_frame = predict_anchored_fields(model, unknown, pairs, 0.6, "cpu")
    torch.testing.assert_close(fields, direct)
    assert anchor_frame is None


def test_a_skipped_anchor_frame_means_direct_registration():
    seq = dataclasses.replace(blob_sequence(n_frames=6, labels=False), ed_index=0, es_index=5)
    model = constant_output(tiny_model(working_size=24), 2.0, 4.0)
    pairs = [(0, t) for t in (1, 2, 4, 5)]  # frame 3, the anchor, had no signal
    fields, anchor_frame = predict_anchored_fields(model, seq, pairs, 0.6, "cpu")
    torch.testing.assert_close(fields, predict_pair_fields(model, seq, pairs, "cpu"))
    assert anchor_frame is None


def test_the_workflow_refuses_the_anchor_until_one_frame_registration_goes_through_it():
    from EchoRegistrationLib.workflow import WorkflowSettings

    with pytest.raises(ValueError, match="not a workflow setting"):
        WorkflowSettings(options={"anchor": 0.6})


def test_register_sequence_takes_the_anchor_for_dlir_to_the_reference_only():
    seq = dataclasses.replace(blob_sequence(n_frames=6, labels=False), ed_index=0, es_index=5)
    model = constant_output(tiny_model(working_size=24), 2.0, 4.0)
    result = register_sequence(seq, "dlir", model=model, reference=0, anchor=0.6, device="cpu")
    direct = register_sequence(seq, "dlir", model=model, reference=0, device="cpu")
    hops = predict_pair_fields(model, seq, [(0, 3), (3, 5)], "cpu")
    composed = compose(hops[:1], hops[1:], seq.spacing)[0].permute(1, 2, 0).numpy()
    assert (result.parameters["anchor"], result.parameters["anchor_frame"]) == (0.6, 3)
    assert abs(result.displacement[5] - composed).max() < 1e-4
    assert abs(result.displacement[5] - direct.displacement[5]).max() > 0.1  # it went through frame 3
    np.testing.assert_allclose(result.displacement[:4], direct.displacement[:4], atol=1e-5)
    # without ES: every frame directly, and no anchor frame recorded
    unknown = register_sequence(dataclasses.replace(seq, es_index=None), "dlir", model=model, reference=0,
                                anchor=0.6, device="cpu")
    assert unknown.parameters["anchor_frame"] is None
    np.testing.assert_allclose(unknown.displacement, direct.displacement, atol=1e-5)
    for method, options in (("deformable", {}), ("dlir", {"mode": "sequential"}), ("dlir", {"anchor": 1.2})):
        with pytest.raises(ValueError, match="anchor"):
            register_sequence(seq, method, model=model if method == "dlir" else None,
                              **{"anchor": 0.6, **options})
