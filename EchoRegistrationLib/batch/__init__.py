"""Cohort batch processing: ``batch(source, output)`` runs the strain workflow over a folder of
files, a CAMUS root or a CSV listing, resumably, locally or on a Dask cluster, and writes one cohort
table (:mod:`.studies`, :mod:`.runner`, :mod:`.cohort`)."""

from .cohort import COLUMNS, RUN_COLUMNS
from .runner import BatchResult, batch, run_study
from .studies import CohortStudy, find_studies

__all__ = ["COLUMNS", "RUN_COLUMNS", "BatchResult", "CohortStudy", "batch", "find_studies", "run_study"]
