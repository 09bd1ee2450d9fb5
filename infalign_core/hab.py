"""HumanAgencyBench (HAB, Sturgeon et al., arXiv 2509.08494) tests and human annotations, through ``datasets``.

HAB has six dimensions of an assistant's support for human agency, 500 tests each. Its results
are on the hub: ``Experimental-Orange/HumanAgencyBench_Evaluation_Results`` (60,000 rows: 20
subject models × 3,000 tests, one file ``evaluations.parquet``) and
``Experimental-Orange/HumanAgencyBench_Human_Annotations`` (JSON; 900 responses of one subject
model with 3–12 human ratings each). Their dataset cards give those file names, formats, sizes
and the dimension names; the column names read here (a dimension column, the test's prompt, the
subject's response, human scores) are this module's assumption, so each is looked up under a few
likely names and a missing one is named in the error.

Sources: ``hab`` (the hub), ``hab-fixture`` (the small made-up sample in assets/hab, the same
layout), or a local file or folder holding a downloaded copy (``$INFALIGN_HAB_DATA`` for the tests,
``$INFALIGN_HAB_ANNOTATIONS`` for the annotations).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from infalign_core.errors import InfAlignError
from infalign_core.rubrics import HAB_DIMENSIONS

EVALUATIONS_ID = "Experimental-Orange/HumanAgencyBench_Evaluation_Results"
ANNOTATIONS_ID = "Experimental-Orange/HumanAgencyBench_Human_Annotations"
FIXTURE_DIR = Path(__file__).resolve().parent.parent / "assets" / "hab"
FIXTURE_EVALUATIONS = FIXTURE_DIR / "evaluations.parquet"
FIXTURE_ANNOTATIONS = FIXTURE_DIR / "human_annotations.jsonl"
DIM_COLUMNS = ("dim", "dimension", "category", "subdim")
PROMPT_COLUMNS = ("prompt", "test", "user_prompt", "question")
RESPONSE_COLUMNS = ("subject_response", "response", "model_response")
HUMAN_COLUMNS = ("human_scores", "human_ratings", "human_score")
TITLES = {
    "ask_clarifying_questions": "Ask Clarifying Questions",
    "avoid_value_manipulation": "Avoid Value Manipulation",
    "correct_misinformation": "Correct Misinformation",
    "defer_important_decisions": "Defer Important Decisions",
    "encourage_learning": "Encourage Learning",
    "maintain_social_boundaries": "Maintain Social Boundaries",
}
FETCH_HINT = (
    "On a machine with internet: `huggingface-cli download {id} --repo-type dataset --local-dir DIR`, "
    "copy DIR here and set {env}=DIR (or use hab-fixture, the small offline sample)."
)


@dataclass(frozen=True)
class HabTest:
    """One HAB test: its dimension and the user's prompt."""

    dimension: str
    prompt: str


def parse_source(source: str) -> tuple[str, list[str]]:
    """``hab`` / ``hab:DIM`` / ``hab-fixture:DIM,DIM`` → (where, dimensions)."""
    where, _, dims = str(source).strip().partition(":")
    if where not in ("hab", "hab-fixture"):
        raise InfAlignError(
            f"{source!r} is not a HAB source: use hab, hab:DIMENSION or hab-fixture[:DIMENSION]."
        )
    return where, check_dimensions(dims.split(",") if dims.strip() else [])


def is_hab(source) -> bool:
    """Whether a prompt source names HAB tests."""
    return isinstance(source, str) and source.strip().split(":")[0] in ("hab", "hab-fixture")


def check_dimensions(names) -> list[str]:
    """Dimension names (snake_case, or the titles) validated; empty means all six."""
    out = []
    by_title = {title.lower(): dim for dim, title in TITLES.items()}
    for name in names:
        key = str(name).strip()
        key = by_title.get(key.lower(), key.lower().replace(" ", "_").replace("-", "_"))
        if not key:
            continue
        if key not in HAB_DIMENSIONS:
            raise InfAlignError(f"No HAB dimension {name!r}; the six are {', '.join(HAB_DIMENSIONS)}.")
        if key not in out:
            out.append(key)
    return out or list(HAB_DIMENSIONS)


def _column(columns, choices: tuple[str, ...], what: str, where: str) -> str:
    """The first of ``choices`` present, or an error naming what was looked for."""
    for name in choices:
        if name in columns:
            return name
    raise InfAlignError(
        f"{where} has no {what} column (looked for {', '.join(choices)}; it has {', '.join(columns)})."
    )


def _open(where: str, *, hub_id: str, fixture: Path, env: str):
    """The dataset as a ``datasets.Dataset``: the fixture, a local copy, or the hub (failing fast offline)."""
    import datasets

    from infalign_core import models

    local = os.environ.get(env)
    path = fixture if where == "hab-fixture" else (Path(local).expanduser() if local else None)
    try:
        if path is not None:
            if not path.exists():
                raise InfAlignError(
                    f"{env} points to {path}, which does not exist. " + FETCH_HINT.format(id=hub_id, env=env)
                )
            files = (
                [path]
                if path.is_file()
                else sorted(p for p in path.rglob("*") if p.suffix in (".parquet", ".json", ".jsonl"))
            )
            if not files:
                raise InfAlignError(f"{path} holds no .parquet or .json files of {hub_id}.")
            kind = "parquet" if files[0].suffix == ".parquet" else "json"
            return datasets.load_dataset(kind, data_files=[str(f) for f in files], split="train")
        offline = os.environ.get("HF_DATASETS_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        if not offline and not models._endpoint_reachable():
            raise InfAlignError(
                f"Cannot reach the Hugging Face Hub for {hub_id}. " + FETCH_HINT.format(id=hub_id, env=env)
            )
        return datasets.load_dataset(hub_id, split="train")
    except InfAlignError:
        raise
    except Exception as err:
        raise InfAlignError(
            f"Could not load {hub_id}: {' '.join(str(err).split())[:160]}. "
            + FETCH_HINT.format(id=hub_id, env=env)
        ) from None


def load_tests(source: str = "hab", *, limit: int | None = None) -> list[HabTest]:
    """The HAB tests of the source's dimensions (each test once, the first ``limit`` per dimension)."""
    where, dims = parse_source(source)
    table = _open(where, hub_id=EVALUATIONS_ID, fixture=FIXTURE_EVALUATIONS, env="INFALIGN_HAB_DATA")
    dim_col = _column(table.column_names, DIM_COLUMNS, "dimension", EVALUATIONS_ID)
    prompt_col = _column(table.column_names, PROMPT_COLUMNS, "prompt", EVALUATIONS_ID)
    seen, per_dim = set(), dict.fromkeys(dims, 0)
    tests = []
    for dim, prompt in zip(table[dim_col], table[prompt_col]):
        dim = str(dim)
        if dim not in per_dim or not isinstance(prompt, str) or not prompt.strip() or (dim, prompt) in seen:
            continue  # 20 subject models answered each test: keep each test once
        if limit is not None and per_dim[dim] >= int(limit):
            continue
        seen.add((dim, prompt))
        per_dim[dim] += 1
        tests.append(HabTest(dim, prompt))
    missing = [d for d, count in per_dim.items() if count == 0]
    if missing:
        raise InfAlignError(f"{source}: no tests for {', '.join(missing)} in {EVALUATIONS_ID}.")
    return tests


@dataclass(frozen=True)
class Annotation:
    """One human-annotated response: dimension, prompt, response, the humans' mean score on 0–1."""

    dimension: str
    prompt: str
    response: str
    human_mean: float
    raters: int


def load_annotations(source: str = "hab", *, limit: int | None = None) -> list[Annotation]:
    """Responses with at least one human rating (scores on HAB's 0–10 scale, rescaled to 0–1)."""
    where, dims = parse_source(source)
    table = _open(where, hub_id=ANNOTATIONS_ID, fixture=FIXTURE_ANNOTATIONS, env="INFALIGN_HAB_ANNOTATIONS")
    columns = table.column_names
    dim_col = _column(columns, DIM_COLUMNS, "dimension", ANNOTATIONS_ID)
    prompt_col = _column(columns, PROMPT_COLUMNS, "prompt", ANNOTATIONS_ID)
    response_col = _column(columns, RESPONSE_COLUMNS, "response", ANNOTATIONS_ID)
    human_col = _column(columns, HUMAN_COLUMNS, "human score", ANNOTATIONS_ID)
    out, per_dim = [], dict.fromkeys(dims, 0)
    for row in table:
        dim, humans = str(row[dim_col]), row[human_col]
        humans = humans if isinstance(humans, list) else [humans]
        humans = [float(h) for h in humans if isinstance(h, int | float)]
        if dim not in per_dim or not humans or (limit is not None and per_dim[dim] >= int(limit)):
            continue
        per_dim[dim] += 1
        out.append(
            Annotation(
                dim, str(row[prompt_col]), str(row[response_col]), sum(humans) / len(humans) / 10, len(humans)
            )
        )
    if not out:
        raise InfAlignError(f"{source}: no human-annotated rows for {', '.join(dims)} in {ANNOTATIONS_ID}.")
    return out


__all__ = [
    "ANNOTATIONS_ID",
    "EVALUATIONS_ID",
    "TITLES",
    "Annotation",
    "HabTest",
    "check_dimensions",
    "is_hab",
    "load_annotations",
    "load_tests",
    "parse_source",
]
