"""Reading and writing echo sequences; ``load_sequence`` recognises the format by content."""

from .camus import CamusDataset, CamusPairFolder, load_camus_patient, read_camus_info, write_camus_patient
from .dispatch import (attach_labels, attach_mask, detect_format, load_sequence, read_label_map,
                       read_mask, save_sequence)

__all__ = [
    "CamusDataset", "CamusPairFolder", "attach_labels", "attach_mask", "detect_format", "load_camus_patient",
    "load_sequence", "read_camus_info", "read_label_map", "read_mask", "save_sequence",
    "write_camus_patient",
]
