"""Strict checks of retrieval inputs: one id normalisation, integer grades, real texts, real lists.

Every loader and the evaluator go through these functions, so an id is the same string wherever it comes
from (queries, corpus, qrels, runs): `normalize_id` turns `1` and `"1"` into `"1"`, and refuses the inputs
where that would silently merge two different ids or hide a mistake.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

V = TypeVar("V")

#: Relevance judgements `{query_id: {doc_id: grade}}`: the one qrels type every loader returns and every
#: consumer reads (ids as `normalize_id` makes them, grades as `grade` makes them).
Qrels = Mapping[str, Mapping[str, int]]

GRADE_HINT = (
    "grades are integers (0 = not relevant, 1, 2, ... = more relevant); map fractional labels to integers "
    "first, e.g. round(2 * label) for labels in steps of 0.5"
)


def normalize_id(value: Any, what: str = "id") -> str:
    """The canonical form of a query or document id: a string; an integer id becomes its decimal text.

    Raises:
        TypeError: `None`, a bool, a float or any other type (a float id like `1.0` would not match `"1"`).
        ValueError: an empty or blank string.

    Example:
        >>> normalize_id(7), normalize_id("d-7")
        ('7', 'd-7')
    """
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{what}: ids must be non-empty strings, got {value!r}")
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    raise TypeError(f"{what}: ids must be strings or integers, got {type(value).__name__} {value!r}; "
                    "convert them to strings, e.g. str(int(x)) for float ids read from a table")


def id_keyed(mapping: Mapping[Any, V], what: str) -> dict[str, V]:
    """`mapping` with `normalize_id` keys; refuses two keys that normalise alike (`1` and `"1"`).

    Example:
        >>> id_keyed({1: "a", "2": "b"}, "queries")
        {'1': 'a', '2': 'b'}
    """
    out: dict[str, V] = {}
    origin: dict[str, Any] = {}
    for key, value in mapping.items():
        text = normalize_id(key, what)
        if text in out:
            raise ValueError(f"{what}: ids {origin[text]!r} and {key!r} are the same id once normalised to "
                             f"{text!r}; give every id once, all as strings")
        out[text], origin[text] = value, key
    return out


#: How to clean a text that `check_unicode` refuses (the bad characters become `?`).
UNICODE_HINT = "clean it, e.g. text.encode('utf-8', 'replace').decode()"


def check_unicode(value: str, what: str) -> str:
    """`value` if it can be encoded as UTF-8 (what every tokenizer does first); a lone surrogate is refused.

    A Python string can hold a lone surrogate (`"\\ud83d"`: half of an emoji, from a JSON `\\ud83d` escape or
    text cut in the middle of a UTF-16 pair); tokenizers cannot encode it and fail at the first evaluation with
    an error that names no text. ASCII texts return at once (`str.isascii` is a flag CPython keeps), so the
    check costs one `encode` of the non-ASCII texts only.

    Raises:
        ValueError: the text holds a surrogate; the message names `what`, the character and its position.

    Example:
        >>> check_unicode("café", "corpus['d1']")
        'café'
        >>> check_unicode("ab\\ud83d", "corpus['d7']")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: corpus['d7']: text is not valid Unicode (lone surrogate '\\ud83d' at position 2); clean it, ...
    """
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"{what}: text is not valid Unicode (lone surrogate {value[err.start]!r} at position "
                         f"{err.start}); {UNICODE_HINT}") from None
    return value


def check_text(value: Any, what: str) -> str:
    """`value` if it is a string that UTF-8 can encode; `None` or anything else is refused (it would be
    encoded as "None"), and so is a lone surrogate (`check_unicode`).

    Example:
        >>> check_text("a query", "queries['q1']")
        'a query'
    """
    if not isinstance(value, str):
        raise TypeError(f"{what}: texts must be strings, got {type(value).__name__} {value!r}; "
                        "drop or fill the missing texts before building the evaluator")
    return check_unicode(value, what)


def texts(mapping: Mapping[Any, Any], what: str) -> dict[str, str]:
    """`{id: text}` with normalised ids and every text checked (`check_text`).

    Example:
        >>> texts({1: "first"}, "corpus")
        {'1': 'first'}
    """
    return {key: check_text(value, f"{what}[{key!r}]") for key, value in id_keyed(mapping, what).items()}


def grade(value: Any, where: str) -> int:
    """A relevance grade as an int: ints, integral floats (`1.0`) and integer strings (`"2"`, `"1.0"`).

    Raises:
        ValueError: a fraction (`0.5`), NaN/inf, or text that is not a number, with `GRADE_HINT`.

    Example:
        >>> grade(2, "q1/d1"), grade(1.0, "q1/d2"), grade("3", "line 4")
        (2, 1, 3)
    """
    if isinstance(value, bool):
        raise ValueError(f"{where}: grade {value!r} is a bool; {GRADE_HINT}")
    if isinstance(value, numbers.Integral):
        return int(value)
    number: float
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"{where}: grade {value!r} is not a number; {GRADE_HINT}") from None
    elif isinstance(value, numbers.Real):
        number = float(value)
    else:
        raise ValueError(f"{where}: grade {value!r} ({type(value).__name__}) is not a number; {GRADE_HINT}")
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"{where}: grade {value!r} is not an integer (not a whole number); {GRADE_HINT}")
    return int(number)


def qrels(mapping: Mapping[Any, Mapping[Any, Any]], what: str = "qrels") -> dict[str, dict[str, int]]:
    """`{query_id: {doc_id: grade}}` with normalised ids and integer grades.

    Example:
        >>> qrels({1: {"d1": 1.0, 7: 2}})
        {'1': {'d1': 1, '7': 2}}
    """
    out: dict[str, dict[str, int]] = {}
    for qid, docs in id_keyed(mapping, what).items():
        if not isinstance(docs, Mapping):
            raise TypeError(f"{what}[{qid!r}] must be a mapping {{doc_id: grade}}, got {type(docs).__name__}")
        out[qid] = {did: grade(g, f"{what}[{qid!r}][{did!r}]") for did, g in id_keyed(docs, f"{what}[{qid!r}]").items()}
    return out


def qrels_from_rows(
    rows: Iterable[tuple[int, Any, Any, Any]], where: Callable[[int], str], unit: str = "line"
) -> dict[str, dict[str, int]]:
    """`{query_id: {doc_id: grade}}` from numbered `(row, query_id, doc_id, grade)` judgements (the lines of a
    qrels file, the rows of a qrels dataset): ids by `normalize_id`, grades by `grade`, each error placed by
    `where(row)`; a pair judged twice is refused, naming the `unit` (`"line"`, `"row"`) of its first judgement.

    Example:
        >>> qrels_from_rows([(1, "q1", 7, "1"), (2, "q1", "d2", 0.0)], lambda n: f"qrels.tsv:{n}")
        {'q1': {'7': 1, 'd2': 0}}
    """
    out: dict[str, dict[str, int]] = {}
    seen: dict[tuple[str, str], int] = {}
    for row, query_id, doc_id, value in rows:
        place = where(row)
        qid, did = normalize_id(query_id, place), normalize_id(doc_id, place)
        if (qid, did) in seen:
            raise ValueError(f"{place}: query {qid!r}, doc {did!r} is already judged on {unit} {seen[qid, did]}; "
                             "judge each pair once")
        seen[qid, did] = row
        out.setdefault(qid, {})[did] = grade(value, place)
    return out


def string_list(value: Any, what: str) -> list[str]:
    """A list of strings from a list/tuple; a lone string is refused (it would become its characters).

    Example:
        >>> string_list(("mrr@10", "map"), "metrics")
        ['mrr@10', 'map']
    """
    if isinstance(value, str):
        raise TypeError(f"{what} must be a list of strings, got the string {value!r}; write [{value!r}]")
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise TypeError(f"{what} must be a list of strings, got {type(value).__name__} {value!r}")
    items = list(value)
    bad = [item for item in items if not isinstance(item, str)]
    if bad:
        raise TypeError(f"{what} must hold strings only, got {bad[0]!r} ({type(bad[0]).__name__})")
    return items
