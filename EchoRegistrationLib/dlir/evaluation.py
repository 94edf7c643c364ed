"""Validation of registration models: ED -> ES accuracy against the truth and the labels.

The metrics are those of ``benchmarks/benchmark_registration.py``: ES is registered to ED (fixed)
through the full inference path (:func:`.inference.predict_sequence_fields`, at the input
resolution, in the model's tracking mode: the ED and ES frames alone for "to_reference", every
frame from ED to ES for "sequential") and scored by

* ``epe_es``: mean end-point error (mm) over the ED myocardium against the true field (simulated
  data only);
* ``dice_es``: mean Dice of LV cavity and myocardium, ES labels warped (nearest) onto ED against the
  ED labels (when both frames are annotated);
* ``folding``: percentage of pixels whose Jacobian determinant is <= 0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from ..spatial.metrics import warped_label_dice
from ..device import resolve_device
from ..spatial.pairs import tracked_frames
from ..sequence import LABEL_MYOCARDIUM
from ..spatial import field_to_torch, folding_fraction
from .data import SequenceItem
from .inference import as_model, predict_sequence_fields
from .model import DLIRModel


def score_ed_es(item: SequenceItem, field: torch.Tensor) -> dict[str, float]:
    """Metrics of the (1, 2, H, W) mm ED -> ES ``field`` (ED grid) of ``item``; NaN where the truth
    or the labels are missing."""
    seq = item.sequence
    ed, es = seq.ed_index or 0, seq.es_index
    scores = {"epe_es": float("nan"), "dice_es": float("nan"),
              "folding": 100 * float(folding_fraction(field, seq.spacing)[0])}
    if item.displacement is not None and ed == 0 and seq.labels is not None and ed in seq.label_frames:
        truth = field_to_torch(item.displacement[es], device=field.device)
        mask = torch.from_numpy(seq.label_map(ed) == LABEL_MYOCARDIUM).to(field.device)
        scores["epe_es"] = float((field - truth).norm(dim=1)[0][mask].mean())
    if seq.labels is not None and {ed, es} <= set(seq.label_frames):
        scores["dice_es"] = warped_label_dice(seq.label_map(ed), seq.label_map(es), field, seq.spacing)
    return scores


def evaluate(model: DLIRModel | str | os.PathLike, items: Sequence[SequenceItem],
             device: str | torch.device = "auto", chunk_size: int = 32) -> dict[str, float | None]:
    """Mean ED -> ES metrics over ``items`` (sequences with known ED and ES); a metric no item
    can score is None. Keys: epe_es (mm), dice_es, folding (%), sequences."""
    dev = resolve_device(device)
    model = as_model(model, dev)
    rows = []
    for k in range(len(items)):
        item = items[k]
        seq = item.sequence
        ed, es = seq.ed_index or 0, seq.es_index
        if es is None or es == ed:
            continue
        part = seq.subsequence(tracked_frames(es, ed, model.mode))  # ED and ES indices are remapped
        fields = predict_sequence_fields(model, part, reference=part.ed_index, device=dev,
                                         chunk_size=chunk_size)
        rows.append(score_ed_es(item, fields[part.es_index:part.es_index + 1]))
    result: dict[str, float | None] = {"sequences": float(len(rows))}
    for key in ("epe_es", "dice_es", "folding"):
        values = [r[key] for r in rows if not np.isnan(r[key])]
        result[key] = float(np.mean(values)) if values else None
    return result
