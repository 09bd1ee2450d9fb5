"""What-if links: a page's shareable state as URL query parameters, and back.

Each page declares its parameters once (:data:`TRANSFORMS`, :data:`CTRL`, :data:`ARENA`):
the query name, the widget key it restores, its kind and its allowed values. Reading a
link refuses a value it cannot honour with a message saying why (the page keeps its
default for it); writing one leaves out values equal to the default, so links stay short.

To add a parameter (e.g. ``procedure=SPEC`` on the Transforms page), append a
:class:`Param` to the page's tuple; a ``kind="text"`` parameter with a ``check`` callable
validates free-form specs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

import numpy as np

from infalign_core.errors import InfAlignError


@dataclass(frozen=True)
class Param:
    """One query parameter: its name in the URL, the widget key it fills, and what it accepts."""

    name: str
    key: str
    kind: str  # "int", "float", "choice", "choices" or "list" (comma-separated), "bool", "text"
    default: object
    low: float | None = None
    high: float | None = None
    choices: Sequence = ()
    cast: Callable | None = None  # for choice(s): turns the URL text into the widget's value type
    check: Callable[[str], object] | None = field(
        default=None, compare=False
    )  # for text: raises InfAlignError

    def parse(self, text: str) -> object:
        """The widget value for this URL text, or InfAlignError saying what is allowed."""
        text = text.strip()
        if self.kind in ("int", "float"):
            try:
                value = int(text) if self.kind == "int" else float(text)
            except ValueError:
                raise InfAlignError(f"link parameter {self.name}={text!r} is not a number") from None
            if not np.isfinite(value) or not (self.low <= value <= self.high):
                raise InfAlignError(
                    f"link parameter {self.name}={text} is outside [{self.low:g}, {self.high:g}]"
                )
            return value
        if self.kind == "bool":
            if text.lower() not in ("1", "0", "true", "false"):
                raise InfAlignError(f"link parameter {self.name}={text!r} must be true or false")
            return text.lower() in ("1", "true")
        if self.kind == "choice":
            return self._one(text)
        if self.kind == "choices":
            return [self._one(item) for item in text.split(",") if item.strip()]
        if self.kind == "list":  # free names (run ids): the page checks they exist
            return [item.strip() for item in text.split(",") if item.strip()]
        if self.check is not None:
            try:
                self.check(text)
            except InfAlignError as err:
                raise InfAlignError(f"link parameter {self.name}={text!r}: {err}") from None
        return text

    def _one(self, text: str) -> object:
        """One allowed choice from its URL text."""
        value = self.cast(text.strip()) if self.cast else text.strip()
        if self.choices and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise InfAlignError(f"link parameter {self.name}: {text!r} is not one of {allowed}")
        return value

    def format(self, value: object) -> str:
        """This widget value as URL text."""
        if self.kind in ("choices", "list"):
            return ",".join(str(v) for v in value)
        if self.kind == "bool":
            return "true" if value else "false"
        if self.kind == "float":
            return f"{float(value):g}"
        return str(value)


def read(params: Mapping[str, str | list[str]], spec: Sequence[Param]) -> tuple[dict[str, object], list[str]]:
    """Widget values (by key) from a link's query parameters, and a message for each refused one."""
    values, errors = {}, []
    for param in spec:
        if param.name not in params:
            continue
        raw = params[param.name]
        text = raw[-1] if isinstance(raw, list) else raw
        try:
            values[param.key] = param.parse(str(text))
        except InfAlignError as err:
            errors.append(f"{err}; kept the page's default")
        except (TypeError, ValueError):
            errors.append(f"link parameter {param.name}={text!r} could not be read; kept the page's default")
    return values, errors


def write(state: Mapping[str, object], spec: Sequence[Param]) -> dict[str, str]:
    """Query parameters for the current widget values, leaving out those at their default."""
    out = {}
    for param in spec:
        if param.key in state and state[param.key] is not None and state[param.key] != param.default:
            out[param.name] = param.format(state[param.key])
    return out


def url(base: str, page: str, params: Mapping[str, str]) -> str:
    """The shareable link: the app's base URL, the page's path, the query string."""
    root = base.split("?", 1)[0].rstrip("/")
    for suffix in ("/transforms", "/ctrl", "/arena", "/tour", "/models", "/calibration", "/home"):
        root = root.removesuffix(suffix)
    query = urlencode(params, safe=",")
    return f"{root}/{page}" + (f"?{query}" if query else "")


def _procedures():
    """The procedures module, imported when a link names one (it pulls in the theory engine)."""
    from infalign_core import procedures

    return procedures


def _n_choices() -> tuple[int, ...]:
    """The N values the frontier chart offers."""
    return (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


T_CHOICES = (0, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500)


def _number(text: str) -> float | int:
    """URL text as the int or float it spells (t choices mix both)."""
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


TRANSFORMS = (
    Param(
        "transforms",
        "names",
        "choices",
        ["identity", "exp", "optimal"],
        choices=("identity", "log", "exp", "optimal"),
    ),
    Param("mode", "mode", "choice", "best", choices=("best", "worst")),
    Param("n", "n", "int", 4, low=1, high=1024),
    Param("ns", "ns", "choices", [1, 4, 16, 64], choices=_n_choices(), cast=int),
    Param("hold", "hold", "choice", "KL budget", choices=("KL budget", "β")),
    Param("kl", "kl", "float", 0.5, low=0.05, high=8.0),
    Param("beta", "beta", "float", 0.25, low=1e-3, high=1e3),
    Param("best_t", "best_t", "bool", False),
    Param("t", "t", "choice", 10, choices=T_CHOICES, cast=_number),
    Param("log_density", "density_log", "bool", False),
    Param(
        "procedure", "procedure_spec", "text", None, check=lambda spec: _procedures().parse_procedure(spec)
    ),
)


def read_transforms(params: Mapping[str, str | list[str]]) -> tuple[dict[str, object], list[str]]:
    """The Transforms page's link: a ``beta`` without ``hold`` holds β fixed, a ``kl`` the budget."""
    values, errors = read(params, TRANSFORMS)
    # A procedure beyond best/worst-of-N seeds its own widgets; mode=worst alone means worst-of-N.
    if values.get("procedure_spec"):
        from infalign_core import explorer

        widgets = explorer.procedure_widgets(values["procedure_spec"])
        values["procedure_kind"] = widgets.pop("kind")
        for name, value in widgets.items():
            if name != "n":
                values[f"procedure_{name}"] = value
            elif values["procedure_kind"] != "poisson" and values["procedure_kind"] != "expr":
                values["n"] = value  # the spec's own N (poisson and expr have none: the link's n stays)
    elif values.get("mode") == "worst":
        values["procedure_kind"] = "won"
    if "hold" not in values:
        if "beta" in values and "kl" not in values:
            values["hold"] = "β"
        elif "kl" in values:
            values["hold"] = "KL budget"
    return values, errors


CTRL = (Param("runs", "overlay", "list", []),)
"""The CTRL runs page's link: the runs shown (overlaid), the first one in focus."""


def missing_runs_warning(requested: Sequence[str], known: Sequence[str]) -> str | None:
    """The warning for a link's run ids that name no run (a typo, a deleted run, a path), or None."""
    missing = [run_id for run_id in requested if run_id not in set(known)]
    if not missing:
        return None
    names = ", ".join(repr(run_id) for run_id in missing)
    shown = [run_id for run_id in requested if run_id in set(known)]
    instead = f"showing {', '.join(shown)}" if shown else "showing the newest run instead"
    return f"link parameter runs: no run {names} among your runs or the gallery; {instead}"


ARENA = (
    Param("run", "challenger_id", "text", ""),
    Param("n", "n", "int", 4, low=1, high=64),
    Param("k", "k", "int", 16, low=1, high=512),
    Param("prompts", "num_prompts", "int", 32, low=2, high=480),
)
"""The arena's link: the challenger (a run id, gallery ids included), N, K and the prompt count."""
