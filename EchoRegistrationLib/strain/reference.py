"""Which frames are end-diastole (ED, the strain reference) and end-systole (ES), and how we know.

One place decides, for the command line, the demo and the Slicer module alike:

* :func:`tracking_reference`: before registering, the frame the myocardium is drawn on and the
  registration reference: the user's choice, else the file's ED, else the first frame;
* :func:`cardiac_frames`: after tracking, ED, ES and the strain reference, each with its source:
  given by the file, set by the user, or detected from the tracked LV cavity volume;
* :func:`end_of_cycle_problem`: whether the cine's last frame can be the next ED after that ED (a full
  cycle, whose loop-closure drift is then reported).

Detection follows the ASE/EACVI chamber quantification recommendations (Lang et al., "Recommendations
for cardiac chamber quantification by echocardiography in adults", J Am Soc Echocardiogr 2015;
28:1-39, section "LV measurements"): without ECG or valve timing, ED is the frame in which the LV
volume is largest and ES the frame in which it is smallest. The volume used is the tracked
endocardial contour's single-plane method-of-discs volume; it is a ratio-preserving measure, so the
frames found do not depend on the pixel size being known. The strain standard (Voigt et al.,
"Definitions for a common standard for 2D speckle tracking echocardiography", Eur Heart J
Cardiovasc Imaging 2015;16:1-11) takes ED as the reference of Lagrangian strain, and peak systolic
strain as the peak within systole, ED to ES: :meth:`CardiacFrames.systolic_frames`.

Frames whose field is not a measurement of motion (no signal, or unlike the reference after
registration: :func:`..registration.tracking.unmeasured_frames`) are never detected as ED or ES: their
tracked volume is whatever the field made of noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sequence import EchoDataError, EchoSequence

FROM_FILE = "given by the file"
FROM_USER = "set by the user"
FROM_USER_REFERENCE = "set by the user as the strain reference"
LARGEST_VOLUME = "detected: largest tracked LV cavity volume (Lang et al. 2015)"
SMALLEST_VOLUME = "detected: smallest tracked LV cavity volume (Lang et al. 2015)"
FIRST_FRAME = "first frame (ED unknown)"


def tracking_reference(seq: EchoSequence, requested: int | None = None) -> int:
    """The registration reference and the frame the myocardium is drawn on: ``requested`` (a user
    choice), else the file's ED, else frame 0 (ED is then detected after tracking).

    Raises:
        EchoDataError: ``requested`` is not a frame of ``seq``.
    """
    if requested is None:
        return 0 if seq.ed_index is None else seq.ed_index
    if not 0 <= requested < seq.n_frames:
        raise EchoDataError(seq.source, f"reference frame {requested} is outside 0..{seq.n_frames - 1}")
    return int(requested)


def tracking_reference_source(seq: EchoSequence, requested: int | None = None) -> str:
    """Why :func:`tracking_reference` chose its frame (one of the ``FROM_*`` / ``FIRST_FRAME`` texts)."""
    if requested is not None:
        return FROM_USER
    return FIRST_FRAME if seq.ed_index is None else FROM_FILE


@dataclass(frozen=True)
class CardiacFrames:
    """ED, ES and the strain reference of a sequence, and how each was established.

    Attributes:
        ed, es: frame indices.
        reference: the frame strain is relative to: ED unless the user set another.
        ed_source, es_source, reference_source: how (``FROM_FILE``, ``FROM_USER``,
            ``LARGEST_VOLUME``, ``SMALLEST_VOLUME``).
        n_frames: frames in the sequence.
    """

    ed: int
    es: int
    reference: int
    ed_source: str
    es_source: str
    reference_source: str
    n_frames: int

    def systolic_frames(self) -> np.ndarray:
        """(K,) frame indices in systole, ED to ES: ``ed..es`` when ES follows ED; when the cine
        starts after ED (ES before ED), the frames up to ES (the end of the beat before) and from
        ED on (the start of the next beat). ED == ES gives every frame."""
        frames = np.arange(self.n_frames)
        if self.ed == self.es:
            return frames
        if self.ed < self.es:
            return frames[self.ed:self.es + 1]
        return frames[(frames <= self.es) | (frames >= self.ed)]

    def describe(self) -> str:
        """One line for the console and reports."""
        return (f"ED frame {self.ed} ({self.ed_source}), ES frame {self.es} ({self.es_source}); "
                f"strain relative to frame {self.reference} ({self.reference_source})")

    def summary(self) -> dict[str, int | str]:
        """JSON-ready frames and sources."""
        return {"ed_frame": self.ed, "ed_frame_source": self.ed_source, "es_frame": self.es,
                "es_frame_source": self.es_source, "reference_frame": self.reference,
                "reference_frame_source": self.reference_source}


def extreme_volume_frame(volume: np.ndarray, unmeasured: np.ndarray, largest: bool) -> int:
    """The frame of largest (``largest``) or smallest ``volume`` ((T,), any unit) among those whose field is a
    measurement of motion (``unmeasured``: (T,) bool, at least one False)."""
    measured = np.flatnonzero(~np.asarray(unmeasured, dtype=bool))
    pick = np.argmax if largest else np.argmin
    return int(measured[pick(np.asarray(volume)[measured])])


def end_of_cycle_problem(frames: CardiacFrames, unmeasured: np.ndarray | None = None) -> str | None:
    """Why the last frame of the cine cannot be the end of the cycle that starts at ED (the next ED, where
    the loop-closure drift is read), or None when it can: the cycle from ED runs through ES to the next ED,
    so ES must lie after ED and before the last frame, strain must be relative to ED, and the last frame's
    field must be a measurement of motion.

    Args:
        frames: ED, ES and the strain reference (:func:`cardiac_frames`).
        unmeasured: (T,) bool, frames whose field is not a measurement of motion; None: none.

    Returns:
        One clause for a warning ("the cine ends at ES (frame 19): ..."), or None.
    """
    ed, es, last = frames.ed, frames.es, frames.n_frames - 1
    if ed == last:
        return f"the cine ends at ED (frame {ed}): no frame after it closes the cycle"
    if es == last:
        return f"the cine ends at ES (frame {es}): no end-of-cycle frame after the cycle from ED (frame {ed})"
    if es == ed:
        return f"ED and ES are the same frame ({ed}): no cycle to close"
    if es < ed:
        return (f"ES (frame {es}) comes before ED (frame {ed}): the cine ends before the ES of the cycle from "
                "ED, with no end-of-cycle frame")
    if frames.reference != ed:
        return f"strain is relative to frame {frames.reference}, not to ED (frame {ed})"
    if unmeasured is not None and unmeasured[last]:
        return f"the last frame ({last}) has no measured motion"
    return None


def cardiac_frames(seq: EchoSequence, volume: np.ndarray, requested: int | None = None,
                   unmeasured: np.ndarray | None = None) -> CardiacFrames:
    """ED, ES and the strain reference of ``seq`` from its file, the user, or the tracked volume.

    Args:
        seq: the sequence (its ``ed_index`` / ``es_index`` win when known).
        volume: (T,) tracked LV cavity volume, any consistent unit (ml, or uncalibrated).
        requested: a user-set strain reference frame, or None for ED.
        unmeasured: (T,) bool, frames whose field is not a measurement of motion
            (:attr:`..registration.RegistrationResult.unmeasured`): never detected as ED or ES. None:
            every frame measured.

    Returns:
        :class:`CardiacFrames`; a missing ED is the ``requested`` reference when there is one
        (``FROM_USER_REFERENCE``), else the measured frame of largest ``volume``; a missing ES the
        measured frame of smallest (Lang et al. 2015); an ES the user set
        (:meth:`..sequence.EchoSequence.with_end_systole`) is ``FROM_USER``. ED and ES given by the
        file or the user are kept even on an unmeasured frame (:class:`.result.StrainResult` then
        leaves the values that depend on them blank).

    Raises:
        EchoDataError: ``volume`` does not have one finite value per frame, ``unmeasured`` not one
            flag per frame, ``requested`` is not a frame, or ED or ES is to be detected and no frame
            is measured.
    """
    volume = np.asarray(volume, dtype=np.float64)
    if volume.shape != (seq.n_frames,) or not np.isfinite(volume).all():
        raise EchoDataError(seq.source, f"cannot find ED / ES: the tracked volume has shape "
                                        f"{volume.shape} or non-finite values (expected {seq.n_frames} "
                                        "finite values)")
    unmeasured = np.zeros(seq.n_frames, bool) if unmeasured is None else np.asarray(unmeasured, dtype=bool)
    if unmeasured.shape != (seq.n_frames,):
        raise EchoDataError(seq.source, f"cannot find ED / ES: {unmeasured.shape} flags of unmeasured frames "
                                        f"for {seq.n_frames} frames")
    chosen = None if requested is None else tracking_reference(seq, requested)
    if (seq.ed_index is None and chosen is None or seq.es_index is None) and unmeasured.all():
        raise EchoDataError(seq.source, "cannot detect ED / ES: no frame's field is a measurement of motion")
    if seq.ed_index is not None:
        ed, ed_source = seq.ed_index, FROM_FILE
    elif chosen is not None:  # the user's reference is their ED when the file gives none
        ed, ed_source = chosen, FROM_USER_REFERENCE
    else:
        ed, ed_source = extreme_volume_frame(volume, unmeasured, largest=True), LARGEST_VOLUME
    es, es_source = ((seq.es_index, FROM_USER if seq.es_set_by_user else FROM_FILE) if seq.es_index is not None
                     else (extreme_volume_frame(volume, unmeasured, largest=False), SMALLEST_VOLUME))
    reference = ed if chosen is None else chosen
    return CardiacFrames(ed=ed, es=es, reference=reference, ed_source=ed_source, es_source=es_source,
                         reference_source=FROM_USER if requested is not None else f"ED, {ed_source}",
                         n_frames=seq.n_frames)
