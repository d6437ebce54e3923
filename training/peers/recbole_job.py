"""Standalone RecBole job, executed INSIDE the pinned peer venv (not the project's .venv).

Usage: ``python recbole_job.py SPEC.json OUT.json``. The spec (written by
``training/peers/recbole_runner.py``) names the data folder holding two RecBole datasets in
``benchmark_filename`` mode (our own train/valid/test split, never RecBole's):

- ``<data_path>/memento/memento.{train,valid,test}.inter``: ``user_id:token item_id:token
  timestamp:float`` for general models (BPR, Pop...);
- ``<data_path>/memento_seq/memento_seq.{...}.inter``: the same decisions with the past items as
  ``item_id_list:token_seq`` for sequential models (SASRec...), which RecBole requires in
  benchmark mode.

It trains every (model, seed) on CPU with full-ranking evaluation and writes
``{model: {seed: {"ndcg@10", "hit@10", "mrr@10", "best_valid": {...}}}}`` to OUT.json.
Only stdlib + recbole imports here: this file must not import the project.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


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
        "stopping_step": int(spec.get("stopping_step", 10)),
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
        cfg["train_neg_sample_args"] = None  # SASRec's CE loss ranks against all items
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
    _, best_valid = trainer.fit(train_data, valid_data, saved=saved, show_progress=False)
    test = trainer.evaluate(test_data, load_best_model=saved, show_progress=False)
    if saved and getattr(trainer, "saved_model_file", None):
        Path(trainer.saved_model_file).unlink(missing_ok=True)
    return {
        "ndcg@10": float(test[f"ndcg@{k}"]),
        "hit@10": float(test[f"hit@{k}"]),
        "mrr@10": float(test[f"mrr@{k}"]),
        "best_valid": {key: float(v) for key, v in (best_valid or {}).items()},
        "sequential": sequential,
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
