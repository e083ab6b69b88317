"""Sparse (SPLADE) embeddings: the `SparseEncoder` adapter and rows kept sparse from the model's output on.

A SPLADE forward pass returns a `(batch, vocabulary)` matrix that is mostly zeros. `SparseRows` keeps only
the non-zeros, batch by batch, as CSR parts (row offsets, column ids, values): memory grows with the
non-zeros, never with texts x vocabulary; only one batch is dense at a time. `SparseEncoderAdapter` is a
`SentenceTransformerEncoder` for sentence-transformers' `SparseEncoder` (same tokenisation, prompts, Router
task and `max_active_dims` pruning as `SparseEncoder.encode_query` / `encode_document`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hf_search_wandb.core.models.base import Kind
from hf_search_wandb.core.models.dense import SentenceTransformerEncoder


def is_sparse_encoder(model: Any) -> bool:
    """True for sentence-transformers' `SparseEncoder` (and subclasses), without importing it eagerly."""
    return any(
        cls.__name__ == "SparseEncoder" and cls.__module__.startswith("sentence_transformers")
        for cls in type(model).__mro__
    )


def quiet_csr(
    crow: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """A `torch.sparse_csr_tensor` without torch's one-time "CSR support is in beta" UserWarning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, cols, values, size=size, check_invariants=False)


@dataclass
class SparseRows:
    """Rows of a `(n, dim)` sparse matrix as CSR parts, on one device.

    Attributes:
        crow: `(n + 1,)` int64 offsets: row `i` holds `cols[crow[i]:crow[i + 1]]`.
        cols: `(nnz,)` int64 column (vocabulary) ids, ascending within a row.
        values: `(nnz,)` float32 non-zero values.
        dim: number of columns (the vocabulary size).

    Example:
        >>> rows = SparseRows.from_dense(torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]]))
        >>> rows.active_dims.tolist(), rows.cols.tolist()
        ([1, 2], [1, 0, 2])
    """

    crow: torch.Tensor
    cols: torch.Tensor
    values: torch.Tensor
    dim: int

    @classmethod
    def empty(cls, dim: int, device: torch.device | str = "cpu") -> SparseRows:
        """No rows."""
        zero = torch.zeros(1, dtype=torch.int64, device=device)
        return cls(zero, zero[:0], torch.zeros(0, dtype=torch.float32, device=device), dim)

    @classmethod
    def from_dense(cls, dense: torch.Tensor) -> SparseRows:
        """The non-zeros of a dense `(n, dim)` batch (row-major order)."""
        rows, cols = torch.nonzero(dense, as_tuple=True)
        counts = torch.bincount(rows, minlength=dense.shape[0])
        crow = torch.zeros(dense.shape[0] + 1, dtype=torch.int64, device=dense.device)
        torch.cumsum(counts, 0, out=crow[1:])
        return cls(crow, cols, dense[rows, cols].float(), int(dense.shape[1]))

    @classmethod
    def cat(cls, parts: Sequence[SparseRows], dim: int, device: torch.device | str = "cpu") -> SparseRows:
        """The rows of `parts`, one after the other."""
        if not parts:
            return cls.empty(dim, device)
        counts = torch.cat([p.active_dims for p in parts])
        crow = torch.zeros(counts.numel() + 1, dtype=torch.int64, device=counts.device)
        torch.cumsum(counts, 0, out=crow[1:])
        return cls(crow, torch.cat([p.cols for p in parts]), torch.cat([p.values for p in parts]), dim)

    @classmethod
    def from_counts(
        cls, counts: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, dim: int
    ) -> SparseRows:
        """Rebuild from per-row non-zero counts (the form rows travel in between processes)."""
        crow = torch.zeros(counts.numel() + 1, dtype=torch.int64, device=counts.device)
        torch.cumsum(counts.to(torch.int64), 0, out=crow[1:])
        return cls(crow, cols.to(torch.int64), values.float(), dim)

    def __len__(self) -> int:
        return int(self.crow.numel() - 1)

    @property
    def nnz(self) -> int:
        """Stored non-zeros."""
        return int(self.cols.numel())

    @property
    def active_dims(self) -> torch.Tensor:
        """`(n,)` int64 number of non-zeros of each row."""
        return self.crow[1:] - self.crow[:-1]

    def row_ids(self) -> torch.Tensor:
        """`(nnz,)` row of each stored value."""
        return torch.repeat_interleave(
            torch.arange(len(self), device=self.crow.device), self.active_dims, output_size=self.nnz
        )

    def take(self, order: torch.Tensor) -> SparseRows:
        """The rows at `order` (int64 row indices), in that order."""
        order = order.to(self.crow.device)
        counts = self.active_dims[order]
        starts = self.crow[:-1][order]
        crow = torch.zeros(order.numel() + 1, dtype=torch.int64, device=order.device)
        torch.cumsum(counts, 0, out=crow[1:])
        total = int(crow[-1].item())
        # position of every kept value in the old arrays: its row's old start + its offset in the row
        offset = torch.arange(total, device=order.device) - torch.repeat_interleave(
            crow[:-1], counts, output_size=total
        )
        source = torch.repeat_interleave(starts, counts, output_size=total) + offset
        return SparseRows(crow, self.cols[source], self.values[source], self.dim)

    def slice(self, start: int, end: int) -> SparseRows:
        """Rows `start:end` (views of the same storage, offsets re-based)."""
        lo, hi = int(self.crow[start].item()), int(self.crow[end].item())
        return SparseRows(self.crow[start : end + 1] - lo, self.cols[lo:hi], self.values[lo:hi], self.dim)

    def normalized(self) -> SparseRows:
        """Each row divided by its L2 norm (cosine similarity as a dot product); empty rows stay empty."""
        norms = torch.zeros(len(self), dtype=torch.float32, device=self.values.device)
        norms.index_add_(0, self.row_ids(), self.values * self.values)
        scale = torch.where(norms > 0, norms.rsqrt(), torch.zeros_like(norms))
        return SparseRows(self.crow, self.cols, self.values * scale[self.row_ids()], self.dim)

    def to_csr(self) -> torch.Tensor:
        """A `(n, dim)` `torch.sparse_csr` tensor over the same data."""
        return quiet_csr(self.crow, self.cols, self.values, (len(self), self.dim))

    def inverted(self) -> torch.Tensor:
        """The transpose as a `(dim, n)` CSR tensor: per vocabulary id, the rows holding it (an inverted index)."""
        rows = self.row_ids()
        order = torch.argsort(self.cols * max(len(self), 1) + rows)
        counts = torch.bincount(self.cols, minlength=self.dim)
        crow = torch.zeros(self.dim + 1, dtype=torch.int64, device=self.cols.device)
        torch.cumsum(counts, 0, out=crow[1:])
        return quiet_csr(crow, rows[order], self.values[order], (self.dim, len(self)))

    def count_vector(self) -> torch.Tensor:
        """`(dim,)` int64: in how many rows each dimension is active (FLOPS statistics)."""
        return torch.bincount(self.cols, minlength=self.dim)

    def to_dense(self) -> torch.Tensor:
        """The dense `(n, dim)` matrix (small inputs and tests only)."""
        dense = torch.zeros((len(self), self.dim), dtype=torch.float32, device=self.values.device)
        dense[self.row_ids(), self.cols] = self.values
        return dense


class SparseEncoderAdapter(SentenceTransformerEncoder):
    """A sentence-transformers `SparseEncoder` (SPLADE: MLM + `SpladePooling`, or any sparse head).

    `forward` returns the model's `(batch, vocabulary)` embedding of one batch, pruned to the model's
    `max_active_dims` like `SparseEncoder.encode` does; the evaluator turns it into `SparseRows` at once.

    Example:
        >>> from sentence_transformers.sparse_encoder import SparseEncoder
        >>> from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer
        >>> mlm = Transformer("sentence-transformers/all-MiniLM-L6-v2", transformer_task="fill-mask")
        >>> adapter = SparseEncoderAdapter(SparseEncoder(modules=[mlm, SpladePooling("max")], device="cpu"))
        >>> adapter.similarity, adapter.encode_texts(["cell growth"], "query").shape
        ('dot', torch.Size([1, 30522]))
    """

    sparse = True

    def __init__(self, model: Any, max_length: int | None = None) -> None:
        super().__init__(model, max_length=max_length)

    @property
    def max_active_dims(self) -> int | None:
        """The model's pruning (`SparseEncoder.max_active_dims`): keep at most this many values per text."""
        value = getattr(self.model, "max_active_dims", None)
        return int(value) if value else None

    @property
    def vocabulary_size(self) -> int | None:
        """The embedding dimension (the vocabulary for SPLADE), when the model says."""
        mlm = getattr(self.model, "transformers_model", None)
        vocab_size = getattr(getattr(mlm, "config", None), "vocab_size", None)
        if type(mlm).__name__.endswith("ForMaskedLM") and vocab_size:  # SPLADE: one dim per vocabulary id
            return int(vocab_size)
        getter = getattr(self.model, "get_embedding_dimension", None) or getattr(
            self.model, "get_sentence_embedding_dimension", None
        )
        value = getter() if callable(getter) else None
        return int(value) if value else None

    def forward(self, features: dict[str, Any], kind: Kind) -> torch.Tensor:
        keep = self.max_active_dims
        extra = {"max_active_dims": keep} if keep is not None else {}
        try:
            out = self.model(features, task=kind, **extra)
        except TypeError:
            out = self.model(features, **extra)
        embeddings = out["sentence_embedding"]
        if keep is not None and keep < embeddings.shape[-1]:
            # sentence-transformers' `select_max_active_dims`: the top-`keep` values by magnitude per row
            top = torch.topk(embeddings.abs(), k=keep, dim=-1).indices
            pruned = torch.zeros_like(embeddings)
            embeddings = pruned.scatter_(-1, top, embeddings.gather(-1, top))
        return embeddings


def flops(query_counts: torch.Tensor, n_queries: int, doc_counts: torch.Tensor, n_docs: int) -> float:
    """The FLOPS estimate of the SPLADE papers: the expected number of multiplications of one query-document
    dot product, `sum_j p_q(j) * p_d(j)`, where `p(j)` is the fraction of queries (documents) in which
    vocabulary id `j` is active. Equal to sentence-transformers' `avg_flops`.

    Example:
        >>> flops(torch.tensor([2, 0, 1]), 2, torch.tensor([1, 1, 1]), 2)
        0.75
    """
    if n_queries == 0 or n_docs == 0:
        return 0.0
    p_query = query_counts.double() / n_queries
    p_doc = doc_counts.double() / n_docs
    return float(torch.dot(p_query, p_doc).item())


def as_numpy_counts(rows: SparseRows) -> np.ndarray:
    """Active dims of each row as an int64 numpy array (for histograms)."""
    return rows.active_dims.cpu().numpy().astype(np.int64)
