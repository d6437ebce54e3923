"""A learned sequence state with a supervised next-item head, twin soft-Q heads over the whole
catalogue and a case memory keyed by the learned state (issue 26, item 2).

Modules: `config` (settings), `batch` (padded sequence windows), `encoder` (causal transformer
or GRU over item, action and time-gap embeddings), `model` (encoder + heads), `case_vote` (the
K nearest past states and what followed them, as a vote over items).
"""

from recsys.rec.seq.batch import SeqBatch, UserSequence, gap_bucket, histories_batch, windows
from recsys.rec.seq.case_vote import CaseVote
from recsys.rec.seq.config import SeqModelConfig
from recsys.rec.seq.model import SeqHeads, SeqQModel

__all__ = [
    "CaseVote",
    "SeqBatch",
    "SeqHeads",
    "SeqModelConfig",
    "SeqQModel",
    "UserSequence",
    "gap_bucket",
    "histories_batch",
    "windows",
]
