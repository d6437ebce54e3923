"""Standalone RecBole job, executed INSIDE the pinned peer venv (not the project's .venv).

Usage: ``python recbole_job.py SPEC.json OUT.json``. The spec (written by
``bench/peers/recbole_runner.py``) names the data folder holding two RecBole datasets in
``benchmark_filename`` mode (our own train/valid/test split, never RecBole's):

- ``<data_path>/memento/memento.{train,valid,test}.inter``: ``user_id:token item_id:token
  timestamp:float`` for general models (BPR, Pop...);
- ``<data_path>/memento_seq/memento_seq.{...}.inter``: the same decisions with the past items as
  ``item_id_list:token_seq`` for sequential models (SASRec, GRU4Rec...), which RecBole
  requires in benchmark mode.

and the test rows to rank (``spec["query_rows"]``: ``[{"user", "history", "n_seen"}]`` in the
test frame's order). It trains every (model, seed) on CPU, evaluating valid NDCG@10 every
epoch and stopping after ``stopping_step`` epochs without a new best (at most ``epochs``),
then with the best model loaded writes ``{model: {seed: {"ndcg@10", "hit@10", "mrr@10",
"best_valid", "sequential", "curve", "epochs_run", "best_epoch", "epoch_seconds", "lists"}}}``
to OUT.json: RecBole's own test metrics, the valid curve, the 1-based best epoch, and per test
row the raw top ``100 + n_seen`` item ids (no masking; ``null`` for a sequential model and a
row without earlier items). Only stdlib + recbole (and its torch) imports here: this file must
not import the project.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

LIST_MARGIN = 100  # mirrors bench.peers.rows.LIST_MARGIN (this file cannot import it)


def _best_epoch(curve: list[float]) -> int:
    """1-based epoch RecBole keeps: the last one that matched or beat every earlier score
    (``recbole.utils.early_stopping`` updates on ``>=``); 0 for an empty curve."""
    best, at = float("-inf"), 0
    for k, v in enumerate(curve):
        if v >= best:
            best, at = v, k + 1
    return at


def _ranked_lists(
    model: Any, dataset: Any, config: Any, rows: list[dict[str, Any]], sequential: bool
) -> list[list[int] | None]:
    """Raw top ``LIST_MARGIN + n_seen`` item ids per row (no masking; padding id 0 never)."""
    import torch
    from recbole.data.interaction import Interaction

    iid, uid = config["ITEM_ID_FIELD"], config["USER_ID_FIELD"]
    seq_field = iid + config["LIST_SUFFIX"]
    len_field = config["ITEM_LIST_LENGTH_FIELD"]
    known = dataset.field2token_id[iid]
    n_items = dataset.item_num
    out: list[list[int] | None] = [None] * len(rows)
    todo = [k for k, r in enumerate(rows) if not sequential or r["history"]]
    model.eval()
    with torch.no_grad():
        for start in range(0, len(todo), 256):
            batch = todo[start : start + 256]
            if sequential:
                hists = [[str(i) for i in rows[k]["history"]] for k in batch]
                seqs = [[known[t] for t in h if t in known] for h in hists]
                width = max(1, max(len(q) for q in seqs))
                mat = torch.zeros(len(batch), width, dtype=torch.long)
                for r, q in enumerate(seqs):
                    mat[r, : len(q)] = torch.tensor(q, dtype=torch.long)
                lengths = torch.tensor([max(1, len(q)) for q in seqs], dtype=torch.long)
                inter = Interaction({seq_field: mat, len_field: lengths})
            else:
                users = dataset.token2id(uid, [str(rows[k]["user"]) for k in batch])
                inter = Interaction({uid: torch.as_tensor(users, dtype=torch.long)})
            scores = model.full_sort_predict(inter.to(config["device"])).view(len(batch), -1)
            assert scores.shape[1] == n_items, (scores.shape, n_items)
            scores[:, 0] = -float("inf")
            order = torch.argsort(scores, dim=1, descending=True, stable=True)
            for r, k in enumerate(batch):
                n = min(LIST_MARGIN + int(rows[k]["n_seen"]), n_items - 1)
                tokens = dataset.id2token(iid, order[r, :n].cpu().numpy())
                out[k] = [int(t) for t in tokens]
    return out


def _run_one(model_name: str, seed: int, spec: dict[str, Any]) -> dict[str, Any]:
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import ModelType, get_model, get_trainer, init_logger, init_seed

    model_cls = get_model(model_name)
    sequential = getattr(model_cls, "type", None) == ModelType.SEQUENTIAL
    dataset = "memento_seq" if sequential else "memento"
    k = int(spec.get("topk", 10))
    cfg: dict[str, Any] = {
        "data_path": spec["data_path"],
        "checkpoint_dir": spec["checkpoint_dir"],
        "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": None,
        "eval_args": {"mode": "full", "order": "TO", "group_by": "user"},
        "metrics": ["NDCG", "Hit", "MRR"],
        "topk": [k],
        "valid_metric": f"NDCG@{k}",
        "epochs": int(spec["epochs"]),
        "stopping_step": int(spec.get("stopping_step", 3)),
        "eval_step": 1,
        "seed": int(seed),
        "reproducibility": True,
        "device": "cpu",
        "use_gpu": False,
        "gpu_id": "",
        "show_progress": False,
        "state": "WARNING",
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        "rm_dup_inter": None,
        "MAX_ITEM_LIST_LENGTH": int(spec.get("max_seq_len", 50)),
        "worker": 0,
        # RecBole's default 2048 leaves a few-thousand-row train file with ~2 steps per epoch
        "train_batch_size": int(spec.get("train_batch_size", 256)),
    }
    if sequential:
        cfg["train_neg_sample_args"] = None  # CE loss (SASRec, GRU4Rec) ranks all items
        # history tokens share the item vocabulary (items seen only inside a history included)
        cfg["alias_of_item_id"] = ["item_id_list"]
    cfg.update(spec.get("overrides", {}).get(model_name, {}))
    config = Config(model=model_name, dataset=dataset, config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logging.getLogger().setLevel(logging.WARNING)
    data = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, data)
    init_seed(config["seed"], config["reproducibility"])
    model = model_cls(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    saved = bool(spec.get("select_best", True))
    curve: list[float] = []
    seconds: list[float] = []
    tick = [time.monotonic()]

    def on_epoch(epoch_idx: int, valid_score: float) -> None:
        now = time.monotonic()
        curve.append(float(valid_score))
        seconds.append(now - tick[0])
        tick[0] = now
        loss = trainer.train_loss_dict.get(epoch_idx)
        print(
            f"{model_name} seed {seed} epoch {epoch_idx + 1}: valid ndcg@{k} {valid_score:.4f}"
            f" loss {loss} ({seconds[-1]:.1f} s)",
            flush=True,
        )

    _, best_valid = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=False, callback_fn=on_epoch
    )
    test = trainer.evaluate(test_data, load_best_model=saved, show_progress=False)
    rows = json.loads(Path(spec["query_rows"]).read_text())
    lists = _ranked_lists(model, data, config, rows, sequential)
    if saved and getattr(trainer, "saved_model_file", None):
        Path(trainer.saved_model_file).unlink(missing_ok=True)
    return {
        "ndcg@10": float(test[f"ndcg@{k}"]),
        "hit@10": float(test[f"hit@{k}"]),
        "mrr@10": float(test[f"mrr@{k}"]),
        "best_valid": {key: float(v) for key, v in (best_valid or {}).items()},
        "sequential": sequential,
        "curve": curve,
        "epochs_run": len(curve),
        "best_epoch": _best_epoch(curve),
        "epoch_seconds": seconds,
        "lists": lists,
    }


def main(argv: list[str]) -> int:
    """Run every (model, seed) of the spec and write the results JSON."""
    spec = json.loads(Path(argv[1]).read_text())
    results: dict[str, dict[str, Any]] = {}
    partial = Path(argv[2] + ".partial")
    for model_name in spec["models"]:
        results[model_name] = {}
        for seed in spec["seeds"]:
            results[model_name][str(seed)] = _run_one(model_name, int(seed), spec)
            partial.write_text(json.dumps(results, indent=2))  # survives a later crash
    Path(argv[2]).write_text(json.dumps(results, indent=2))
    partial.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
