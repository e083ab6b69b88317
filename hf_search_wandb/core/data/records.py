"""What a loaded retrieval split is, whichever loader read it: `BeirData`, and `doc_text` (a corpus record's text).

The BEIR folder reader (`core.data.beir`) and the Hub layouts (`core.data.hub_layouts`) both build these, so
they live below both: imports run `beir` -> `hub_layouts` -> `records`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hf_search_wandb.core.data.inputs import Qrels


@dataclass
class BeirData:
    """One split of a BEIR dataset: texts by id and graded relevance judgements."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: Qrels
    name: str = "beir"

    def __repr__(self) -> str:
        return (
            f"BeirData(name={self.name!r}, corpus={len(self.corpus):,} docs, "
            f"queries={len(self.queries):,}, judged queries={len(self.qrels):,})"
        )


def doc_text(record: dict[str, Any], sep: str = " ") -> str:
    """The text a model sees for a BEIR corpus record: title and body joined (as MTEB and BEIR do).

    Example:
        >>> doc_text({"title": "Cells", "text": "grow."})
        'Cells grow.'
    """
    title = (record.get("title") or "").strip()
    text = (record.get("text") or "").strip()
    return f"{title}{sep}{text}".strip() if title else text
