"""Prompt sources: the bundled set, an uploaded JSONL/CSV/TXT file, a Hugging Face dataset.

Every source ends in the same validation, which drops what cannot be used and says so:
empty prompts and duplicates are dropped, over-long prompts truncated, each with a notice;
an empty set, a missing or non-text column, a malformed file or an oversized upload is an
InfAlignError whose message says what to do instead.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from infalign_core import classroom
from infalign_core.errors import InfAlignError

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_PROMPT_CHARS = 1000
PROMPT_COLUMN_GUESSES = ("prompt", "text", "question", "instruction", "query", "input", "content")
FILE_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "txt",
}
TXT_COLUMN = "text"
PARQUET_SUFFIXES = (".parquet", ".pq")
HH_COLUMNS = ("chosen", "rejected")  # Anthropic HH's schema: two full dialogues per row
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


@dataclass(frozen=True)
class PromptPreset:
    """A dialogue or summarisation prompt set as the paper uses it, with its inference procedure."""

    name: str
    dataset: str
    subset: str | None
    split: str  # for training; evaluate on the held-out split named in ``size``
    column: str | None
    mode: str  # "best" (best-of-N) or "worst" (worst-of-N)
    size: str
    note: str


PROMPT_PRESETS: dict[str, PromptPreset] = {
    "hh-helpful": PromptPreset(
        name="hh-helpful",
        dataset="Anthropic/hh-rlhf",
        subset="helpful-base",
        split="train",
        column=None,
        mode="best",
        size="2.4k test / 43.8k train dialogues, ~14 MB",
        note="Anthropic HH helpfulness dialogues; the paper aligns for best-of-N on them.",
    ),
    "hh-harmless": PromptPreset(
        name="hh-harmless",
        dataset="Anthropic/hh-rlhf",
        subset="harmless-base",
        split="train",
        column=None,
        mode="worst",
        size="2.3k test / 42.5k train dialogues, ~12 MB",
        note="Anthropic HH harmlessness dialogues; the paper aligns for worst-of-N (jailbreaks) on them.",
    ),
    "tldr": PromptPreset(
        name="tldr",
        dataset="trl-lib/tldr",
        subset=None,
        split="train",
        column="prompt",
        mode="best",
        size="6.4k validation / 117k train posts, ~90 MB",
        note="Reddit TL;DR summarisation prompts (the set TRL's examples use); best-of-N.",
    ),
}


@dataclass
class PromptSet:
    """Validated prompts, with the notices validation produced (drops, truncations)."""

    prompts: list[str]
    notices: list[str] = field(default_factory=list)
    source: str = ""
    column: str | None = None

    def __len__(self) -> int:
        return len(self.prompts)


@dataclass
class _Table:
    """Columns of a source before validation; ``values(column)`` reads one column."""

    columns: list[str]
    values: Callable[[str], list]
    description: str
    text_columns: list[str] | None = None  # known from a schema (datasets); else inferred


# --- public API -------------------------------------------------------------------------


def load_prompts(
    source,
    *,
    column: str | None = None,
    split: str | None = None,
    limit: int | None = None,
    max_chars: int = MAX_PROMPT_CHARS,
    filename: str | None = None,
    subset: str | None = None,
) -> PromptSet:
    """Load and validate prompts from ``source``.

    ``source`` is "bundled" (the world's prompt set; ``split`` "train"/"eval" or all), a path
    to a .jsonl/.json/.csv/.tsv/.txt file, uploaded bytes or a file-like upload (its format
    from ``filename`` or its ``.name``), a folder saved with ``Dataset.save_to_disk`` or
    holding data files, or a Hugging Face dataset id (``split`` defaults to "train").
    ``column`` picks the text column; by default the only column or a usual name like "prompt".
    A source with ``chosen``/``rejected`` dialogue columns (Anthropic HH) is read as dialogues:
    each prompt is the ``chosen`` dialogue without its final assistant reply. ``subset`` is a
    dataset's config name or ``data_dir`` (HH: helpful-base, harmless-base, ...); a name in
    ``PROMPT_PRESETS`` ("hh-helpful", "hh-harmless", "tldr") fills source, subset, split and column.
    """
    if limit is not None and int(limit) < 1:
        raise InfAlignError(f"The number of prompts must be at least 1, got {limit}.")
    if int(max_chars) < 1:
        raise InfAlignError(f"max_chars must be at least 1, got {max_chars}.")
    if isinstance(source, str) and source.strip().split(":")[0] in ("hab", "hab-fixture"):
        from infalign_core import hab

        tests = hab.load_tests(source.strip())  # HumanAgencyBench's tests (hab.py says where from)
        prompts, notices = clean_prompts([t.prompt for t in tests], column="prompt", max_chars=int(max_chars))
        if limit is not None:
            prompts = prompts[: int(limit)]
        return PromptSet(
            prompts=prompts, notices=notices, source=f"HumanAgencyBench ({source.strip()})", column="prompt"
        )
    if isinstance(source, str) and source in PROMPT_PRESETS:
        preset = PROMPT_PRESETS[source]
        source, subset = preset.dataset, subset or preset.subset
        split, column = split or preset.split, column or preset.column
    table = _open(source, split=split, filename=filename, subset=subset)
    if _is_hh(table, column):
        prompts, notices = hh_prompts(table.values(column or "chosen"), table.description, int(max_chars))
        column = column or "chosen"
        prompts, more = clean_prompts(prompts, column=column, max_chars=int(max_chars))
        notices += more
    else:
        column = _choose_column(table, column)
        prompts, notices = clean_prompts(table.values(column), column=column, max_chars=int(max_chars))
    if limit is not None and len(prompts) > int(limit):
        prompts = prompts[: int(limit)]
    elif limit is not None and len(prompts) < int(limit):
        notices.append(f"Asked for {int(limit)} prompts; {table.description} has {len(prompts)} usable ones.")
    return PromptSet(prompts=prompts, notices=notices, source=table.description, column=column)


def list_columns(
    source, *, split: str | None = None, filename: str | None = None, subset: str | None = None
) -> list[str]:
    """Column names of a source (for a column picker); a plain-text file has one, "text"."""
    return list(_open(source, split=split, filename=filename, subset=subset).columns)


def needs_column_choice(
    source, *, split: str | None = None, filename: str | None = None, subset: str | None = None
) -> list[str]:
    """The text columns a user must choose among ([] when the prompts' column is clear: HH, a usual name)."""
    table = _open(source, split=split, filename=filename, subset=subset)
    if _is_hh(table, None):
        return []
    candidates = table.text_columns if table.text_columns is not None else table.columns
    if guess_prompt_column(candidates) or guess_prompt_column(table.columns):
        return []
    return list(candidates)


def hh_prompt(dialogue: str, where: str) -> str:
    """An HH dialogue without its final assistant reply, as a transcript ending in "Assistant:"."""
    from infalign_core.chat import is_dialogue, parse_dialogue, prompt_text

    if not is_dialogue(dialogue):
        raise InfAlignError(f"{where} is not an HH dialogue: it does not start with 'Human:'.")
    messages = parse_dialogue(dialogue)
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        raise InfAlignError(
            f"{where} has no 'Assistant:' turn; an HH dialogue ends with the assistant's reply."
        )
    head = messages[:last]
    if not head or head[-1]["role"] != "user":
        raise InfAlignError(f"{where} has no 'Human:' turn before its final 'Assistant:' reply.")
    return prompt_text(head, transcript=True)


def hh_prompts(values: Sequence, description: str, max_chars: int) -> tuple[list[str], list[str]]:
    """The prompt of every HH dialogue; over-long ones are dropped (truncating would cut the last turn)."""
    prompts = [
        hh_prompt(v, f"Row {row} of {description}") if isinstance(v, str) and v.strip() else v
        for row, v in enumerate(values, start=1)
    ]
    kept = [p for p in prompts if not (isinstance(p, str) and len(p) > max_chars)]
    notices = []
    if len(kept) < len(prompts):
        notices.append(
            f"Dropped {len(prompts) - len(kept)} dialogue(s) longer than {max_chars} characters "
            "(truncating would cut their last turn)."
        )
    if not kept:
        raise InfAlignError(
            f"Every dialogue in {description} is longer than {max_chars} characters; raise max_chars."
        )
    return kept, notices


def _is_hh(table: _Table, column: str | None) -> bool:
    """Whether a table is HH-shaped (chosen/rejected dialogue columns) and no other column was asked for."""
    from infalign_core.chat import is_dialogue

    if column not in (None, *HH_COLUMNS) or "chosen" not in table.columns:
        return False
    if column is None and guess_prompt_column(table.text_columns or table.columns) not in (None, "chosen"):
        return False  # a "prompt" column beside chosen/rejected (a preference set) is the prompt
    first = next((v for v in table.values(column or "chosen") if isinstance(v, str) and v.strip()), None)
    return first is not None and is_dialogue(first)


def guess_prompt_column(columns: Sequence[str]) -> str | None:
    """The column most likely to hold prompts: the only one, else a usual name, else None."""
    if len(columns) == 1:
        return columns[0]
    lowered = {c.lower(): c for c in columns}
    for guess in PROMPT_COLUMN_GUESSES:
        if guess in lowered:
            return lowered[guess]
    return None


def clean_prompts(values: Sequence, *, column: str | None = None, max_chars: int = MAX_PROMPT_CHARS):
    """Validate raw column values: (prompts, notices). Drops empties and duplicates, truncates."""
    where = f"column '{column}'" if column else "the source"
    if len(values) == 0:
        raise InfAlignError(f"No prompts found in {where}: the source is empty.")
    for row, value in enumerate(values, start=1):
        if value is not None and not isinstance(value, str) and not _is_missing(value):
            raise InfAlignError(
                f"{where[0].upper()}{where[1:]} holds {type(value).__name__} values, not text "
                f"(row {row}: {_preview(value)}); choose a column of text prompts."
            )
    notices = []
    texts = [v for v in values if isinstance(v, str) and v.strip()]
    if not texts:
        raise InfAlignError(f"All {len(values)} prompts in {where} are empty; choose a column with text.")
    if len(texts) < len(values):
        notices.append(f"Dropped {len(values) - len(texts)} empty prompt(s).")
    too_long = sum(len(t) > max_chars for t in texts)
    if too_long:
        texts = [t[:max_chars] for t in texts]
        notices.append(f"Truncated {too_long} prompt(s) longer than {max_chars} characters.")
    unique = list(dict.fromkeys(texts))
    if len(unique) < len(texts):
        notices.append(f"Dropped {len(texts) - len(unique)} duplicate prompt(s), keeping the first of each.")
    return unique, notices


# --- sources ----------------------------------------------------------------------------


def _open(source, *, split: str | None, filename: str | None, subset: str | None = None) -> _Table:
    """Dispatch on the kind of source and return its table."""
    subset = (subset or "").strip() or None
    if subset is not None and not (isinstance(source, str | os.PathLike) and not Path(source).is_file()):
        raise InfAlignError(
            f"A subset ({subset!r}) applies to a dataset folder or hub id, not to {_name_of(source, filename)}; "
            "leave the subset empty."
        )
    if isinstance(source, str) and source == "bundled":
        if subset is not None:
            raise InfAlignError("The bundled prompt set has no subsets; leave the subset empty.")
        return _bundled(split)
    if isinstance(source, bytes | bytearray | memoryview):
        return _from_bytes(bytes(source), filename or "upload", split=split)
    if hasattr(source, "getvalue") or hasattr(source, "read"):  # a Streamlit UploadedFile, a file object
        name = filename or getattr(source, "name", None) or "upload"
        size = getattr(source, "size", None)
        if size is not None and size > MAX_UPLOAD_BYTES:
            raise InfAlignError(_too_big(name, size))
        data = source.getvalue() if hasattr(source, "getvalue") else source.read(MAX_UPLOAD_BYTES + 1)
        if isinstance(data, str):
            data = data.encode("utf-8")
        return _from_bytes(data, name, split=split)
    if isinstance(source, os.PathLike) or isinstance(source, str):
        text = os.fspath(source).strip()
        if not text:
            raise InfAlignError("No prompt source given: choose 'bundled', a file, or a dataset name.")
        classroom.guard_source(text, "prompt file or dataset folder")
        path = Path(text).expanduser()
        if path.is_file():
            if path.stat().st_size > MAX_UPLOAD_BYTES:
                raise InfAlignError(_too_big(path.name, path.stat().st_size))
            return _from_bytes(path.read_bytes(), path.name, split=split)
        if path.is_dir():
            return _from_dataset_dir(path, split, subset)
        if path.suffix.lower() in FILE_SUFFIXES or isinstance(source, os.PathLike) or not _HUB_ID.match(text):
            raise InfAlignError(
                f"No file or folder at {path}, and it is not a Hugging Face dataset id like 'owner/name'. "
                "Check the path, or use 'bundled'."
            )
        return _from_hub(text, split, subset)
    raise InfAlignError(f"Cannot read prompts from a {type(source).__name__}; give a path, bytes or a name.")


def _bundled(split: str | None) -> _Table:
    """The world's prompt set, optionally one split."""
    from infalign_core.world import PROMPTS_PATH

    if not PROMPTS_PATH.is_file():
        raise InfAlignError(
            f"The bundled prompt set is missing ({PROMPTS_PATH}); rebuild the world or upload prompts."
        )
    table = _from_bytes(PROMPTS_PATH.read_bytes(), PROMPTS_PATH.name, split=split)
    table.description = "the bundled prompt set" + (f" ({split} split)" if split else "")
    return table


def _from_bytes(data: bytes, name: str, *, split: str | None) -> _Table:
    """Parse an uploaded or local file by its suffix (or its first character if it has none)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise InfAlignError(_too_big(name, len(data)))
    if Path(name).suffix.lower() in PARQUET_SUFFIXES or data[:4] == b"PAR1":
        return _records_table(_parse_parquet(data, name), name, split)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InfAlignError(
            f"{name} is not UTF-8 text (bad byte at offset {err.start}); save it as UTF-8."
        ) from None
    if not text.strip():
        raise InfAlignError(f"{name} is empty: no prompts found.")
    suffix = Path(name).suffix.lower()
    kind = FILE_SUFFIXES.get(suffix)
    if kind is None:
        if suffix and name != "upload":
            raise InfAlignError(
                f"Unsupported file type '{suffix}' ({name}): use .jsonl, .json, .csv, .tsv, .txt or .parquet."
            )
        kind = {"{": "jsonl", "[": "json"}.get(text.lstrip()[:1], "csv")
    if kind == "jsonl":
        records = _parse_jsonl(text, name)
    elif kind == "json":
        records = _parse_json(text, name)
    elif kind in ("csv", "tsv"):
        records = _parse_csv(text, name, delimiter="\t" if kind == "tsv" else ",")
    else:
        records = [{TXT_COLUMN: line} for line in text.splitlines()]
    return _records_table(records, name, split)


def _parse_jsonl(text: str, name: str) -> list[dict]:
    """One JSON object (or string) per line; blank lines skipped; errors name the line."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise InfAlignError(
                f"Line {number} of {name} is not valid JSON ({err.msg}, column {err.colno}); "
                'each line must be one object like {"prompt": "..."}.'
            ) from None
        records.append(_as_record(value, f"Line {number} of {name}"))
    return records


def _parse_parquet(data: bytes, name: str) -> list[dict]:
    """The rows of a Parquet file (read from memory: an upload never touches the disk)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as err:
        raise InfAlignError(f"{name} is not a readable Parquet file: {_first_line(err)}") from None
    return table.to_pylist()


def _name_of(source, filename: str | None) -> str:
    """How a message names a source."""
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    return filename or getattr(source, "name", None) or "an upload"


def _parse_json(text: str, name: str) -> list[dict]:
    """A JSON list of objects/strings, or an object of equal-length columns."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise InfAlignError(f"{name} is not valid JSON ({err.msg}, line {err.lineno}).") from None
    if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        lengths = {len(v) for v in value.values()}
        if len(lengths) != 1:
            raise InfAlignError(f"The columns of {name} have different lengths {sorted(lengths)}.")
        return [dict(zip(value, row)) for row in zip(*value.values())]
    if not isinstance(value, list):
        raise InfAlignError(f'{name} must hold a list of objects like {{"prompt": "..."}}.')
    return [_as_record(item, f"Item {i} of {name}") for i, item in enumerate(value, start=1)]


def _as_record(value, where: str) -> dict:
    """A JSON value as a row: objects as they are, bare strings under the "text" column."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        return {TXT_COLUMN: value}
    raise InfAlignError(f'{where} is a {type(value).__name__}, expected an object like {{"prompt": "..."}}.')


def _parse_csv(text: str, name: str, *, delimiter: str) -> list[dict]:
    """CSV/TSV with a header row."""
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        records = [{k: v for k, v in row.items() if k is not None} for row in reader]
    except csv.Error as err:
        raise InfAlignError(f"Line {reader.line_num} of {name} is not valid CSV ({err}).") from None
    if not reader.fieldnames:
        raise InfAlignError(f"{name} has no header row naming its columns.")
    if not records:
        raise InfAlignError(f"{name} has a header but no rows: no prompts found.")
    return records


def _records_table(records: list[dict], name: str, split: str | None) -> _Table:
    """A table over parsed rows, filtered to ``split`` through a "split" column if asked."""
    if not records:
        raise InfAlignError(f"{name} holds no rows: no prompts found.")
    if split:
        if not any("split" in r for r in records):
            raise InfAlignError(
                f"{name} has no 'split' column to pick split '{split}' from; leave the split empty."
            )
        available = sorted({str(r.get("split")) for r in records})
        records = [r for r in records if r.get("split") == split]
        if not records:
            raise InfAlignError(
                f"{name} has no rows in split '{split}'; its splits are {', '.join(available)}."
            )
    columns = list(dict.fromkeys(key for r in records for key in r))
    return _Table(columns=columns, values=lambda c: [r.get(c) for r in records], description=name)


def _from_dataset_dir(path: Path, split: str | None, subset: str | None = None) -> _Table:
    """A folder written by ``save_to_disk``, or one holding data files ``load_dataset`` reads.

    ``subset`` is a subfolder (a hub dataset's ``data_dir``, like HH's helpful-base).
    """
    import datasets

    if subset is not None:
        if not (path / subset).is_dir():
            found = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
            raise InfAlignError(
                f"{path} has no subset (data_dir) {subset!r}; its subsets are {', '.join(found) or 'none'}."
            )
        path = path / subset
    saved = any((path / f).exists() for f in ("dataset_info.json", "dataset_dict.json", "state.json"))
    try:
        if saved:
            loaded = datasets.load_from_disk(str(path))
        else:
            loaded = datasets.load_dataset(str(path), split=split or None)
    except Exception as err:  # datasets raises many types; all mean "cannot read this folder"
        raise InfAlignError(f"Could not read a dataset from {path}: {_first_line(err)}") from None
    return _dataset_table(loaded, split, str(path))


def _from_hub(name: str, split: str | None, subset: str | None = None) -> _Table:
    """A Hugging Face Hub dataset by id (``subset``: its config name or data_dir); fails fast offline."""

    offline_hint = (
        "Without internet, save the dataset with Dataset.save_to_disk on a machine that has it and "
        "enter that folder's path here, or upload a JSONL/CSV file."
    )
    if not _offline_mode() and not _hub_reachable():
        raise InfAlignError(f"Cannot reach the Hugging Face Hub to load dataset '{name}'. {offline_hint}")
    try:
        loaded = _load_hub_dataset(name, split or "train", subset)
    except Exception as err:  # not found, gated, offline, bad split: the message says which
        if subset is not None and _is_missing_subset(err):
            raise InfAlignError(
                f"Dataset '{name}' has no subset (config or data_dir) {subset!r}: {_first_line(err)}. "
                "Check the name on the dataset's page (HH: helpful-base, harmless-base, ...)."
            ) from None
        raise InfAlignError(
            f"Could not load Hugging Face dataset '{name}' (split '{split or 'train'}'): "
            f"{_first_line(err)}. Check the name and split. {offline_hint}"
        ) from None
    return _dataset_table(loaded, split, f"dataset {name}")


def _load_hub_dataset(name: str, split: str, subset: str | None):
    """load_dataset with ``subset`` as a config name when the dataset has one by that name, else as data_dir."""
    import datasets

    if subset is None:
        return datasets.load_dataset(name, split=split)
    try:
        configs = datasets.get_dataset_config_names(name)
    except Exception:  # no config list (a plain data repo): subset is a data_dir then
        configs = []
    if subset in configs:
        return datasets.load_dataset(name, subset, split=split)
    return datasets.load_dataset(name, data_dir=subset, split=split)


def _is_missing_subset(err: BaseException) -> bool:
    """Whether a load_dataset error means the config or data_dir does not exist."""
    text = str(err).lower()
    return any(
        phrase in text
        for phrase in (
            "data_dir",
            "no (supported) data files",
            "unable to find",
            "doesn't exist",
            "config name",
        )
    )


def _dataset_table(loaded, split: str | None, description: str) -> _Table:
    """Pick a split from a DatasetDict and expose its columns."""
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded)
        if split:
            if split not in loaded:
                raise InfAlignError(
                    f"{description} has no split '{split}'; its splits are {', '.join(names)}."
                )
            loaded = loaded[split]
        elif "train" in loaded or len(names) == 1:
            loaded = loaded["train" if "train" in loaded else names[0]]
        else:
            raise InfAlignError(f"{description} has several splits ({', '.join(names)}); choose one.")
    if len(loaded) > 2_000_000:
        raise InfAlignError(f"{description} has {len(loaded):,} rows; use a split or a smaller dataset.")
    text_columns = [
        name
        for name, feature in loaded.features.items()
        if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")
    ]
    return _Table(
        columns=list(loaded.column_names),
        values=lambda c: loaded[c],
        description=description + (f" ({split})" if split else ""),
        text_columns=text_columns,
    )


def _choose_column(table: _Table, column: str | None) -> str:
    """The requested column if it exists and holds text; otherwise a clear error."""
    if column is None:
        candidates = table.text_columns if table.text_columns is not None else table.columns
        column = guess_prompt_column(candidates) or guess_prompt_column(table.columns)
        if column is None:
            raise InfAlignError(
                f"Choose the column that holds the prompts in {table.description}: "
                f"{', '.join(table.columns)}."
            )
    if column not in table.columns:
        raise InfAlignError(
            f"{table.description} has no column '{column}'; its columns are {', '.join(table.columns)}."
        )
    if table.text_columns is not None and column not in table.text_columns:
        raise InfAlignError(
            f"Column '{column}' of {table.description} does not hold text; "
            f"text columns: {', '.join(table.text_columns) or 'none'}."
        )
    return column


# --- helpers ----------------------------------------------------------------------------


def _offline_mode() -> bool:
    """Whether the user asked the Hugging Face libraries to work offline (from their cache)."""
    return any(
        os.environ.get(k, "").lower() in ("1", "true", "yes", "on")
        for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the hub, so an offline machine fails in seconds, not after retries."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # a proxy may reach what a direct connection cannot
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _is_missing(value) -> bool:
    """NaN (pandas' empty cell) counts as an empty prompt, not as a number column."""
    return isinstance(value, float) and value != value


def _preview(value, width: int = 40) -> str:
    """A short repr for error messages."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _first_line(err: BaseException) -> str:
    """The first line of an exception's message, with its type if the message is empty."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _too_big(name: str, size: int) -> str:
    """The message for an upload over the size bound."""
    return (
        f"{name} is {size / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 2**20:.0f} MB. "
        "Upload fewer prompts, or load a Hugging Face dataset instead."
    )
