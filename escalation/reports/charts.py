"""The bulletin chart as a PNG: matplotlib with the Agg backend (headless) and a CJK font
shipped as a Python package, so labels in Chinese render as Chinese, not empty boxes.

The font is Noto Sans CJK (SIL Open Font License) from the PyPI package
``noto-cjk-sans-otc``; its collection's Simplified Chinese face ("Noto Sans CJK SC") is
used for every label. Debian's ``fonts-noto-cjk`` file is used if the package is missing.
Rendering takes a chart description from escalation.reports.bulletin.chart_spec (plain data).
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FAMILY = "Noto Sans CJK SC"
DEBIAN_FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
           "#ff9da7", "#bab0ac"]
RESOLVED_COLOUR, OPEN_COLOUR = "#59a14f", "#e15759"
DPI = 110

_lock = threading.Lock()  # matplotlib's font objects are shared and not thread-safe


class FontMissing(RuntimeError):
    """No CJK font: install the noto-cjk-sans-otc package (a dependency of tierbot)."""


@cache
def font_path() -> Path:
    try:
        from noto_cjk_sans_otc import FONT_PATH
    except ImportError:
        FONT_PATH = None
    for candidate in (FONT_PATH, DEBIAN_FONT):
        if candidate is not None and Path(str(candidate)).is_file():
            return Path(str(candidate))
    raise FontMissing("no CJK font found: pip install noto-cjk-sans-otc (or apt-get install fonts-noto-cjk)")


@cache
def _face_index() -> int:
    from matplotlib.ft2font import FT2Font

    path = str(font_path())
    faces = FT2Font(path).num_faces
    for index in range(faces):
        if FT2Font(path, face_index=index).family_name == FAMILY:
            return index
    raise FontMissing(f"{path} has no {FAMILY} face")


@cache
def covered() -> frozenset[int]:
    """The code points the chart's font has glyphs for."""
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(str(font_path()), face_index=_face_index()).get_charmap())


def spec_texts(spec: dict[str, Any]) -> list[str]:
    """Every piece of text the chart draws (titles, legend, ticks, unit labels)."""
    texts = [spec[key] for key in ("title", "weeks_title", "units_title", "resolved", "open", "count",
                                   "week_of", "empty")]
    texts += spec["weeks"]
    texts += [s["label"] for s in spec["series"]]
    texts += [u["label"] for u in spec["units"]]
    return texts


def missing_glyphs(texts: Iterable[str]) -> set[str]:
    """Characters the font cannot draw (would show as empty boxes); whitespace aside."""
    have = covered()
    return {ch for text in texts for ch in text if not ch.isspace() and ord(ch) not in have}


@cache
def _setup() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import font_manager

    font_manager.fontManager.addfont(str(font_path()))
    return font_manager.FontProperties(family=FAMILY)


def render_png(spec: dict[str, Any]) -> bytes:
    """Draw the chart; returns PNG bytes. Thread-safe (rendering is serialised)."""
    missing = missing_glyphs(spec_texts(spec))
    if missing:  # still drawn: a rare character in a unit's name should not stop a bulletin
        log.warning("chart font lacks glyphs for %s", "".join(sorted(missing)))
    with _lock:
        return _render(spec)


def _literal(text: str) -> str:
    """matplotlib reads text between two $ as mathematics; a unit's name is not."""
    return text.replace("$", r"\$")


def _literal_spec(spec: dict[str, Any]) -> dict[str, Any]:
    out = {key: _literal(value) if isinstance(value, str) else value for key, value in spec.items()}
    out["weeks"] = [_literal(w) for w in spec["weeks"]]
    out["series"] = [{**s, "label": _literal(s["label"])} for s in spec["series"]]
    out["units"] = [{**u, "label": _literal(u["label"])} for u in spec["units"]]
    return out


def _render(spec: dict[str, Any]) -> bytes:
    font = _setup()
    spec = _literal_spec(spec)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    units = spec["units"]
    unit_height = max(2.0, 0.32 * len(units) + 1.0)
    fig = Figure(figsize=(8.0, 3.8 + unit_height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(spec["title"], fontproperties=_sized(font, 14))
    top, bottom = fig.subplots(2, 1, height_ratios=[3.8, unit_height])
    _weeks(top, spec, font)
    _units(bottom, spec, font)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _sized(font: Any, size: float) -> Any:
    sized = font.copy()
    sized.set_size(size)
    return sized


def _style(ax: Any, font: Any) -> None:
    for label in (*ax.get_xticklabels(), *ax.get_yticklabels()):
        label.set_fontproperties(font)
    ax.spines[["top", "right"]].set_visible(False)


def _weeks(ax: Any, spec: dict[str, Any], font: Any) -> None:
    weeks = spec["weeks"]
    positions = list(range(len(weeks)))
    base = [0] * len(weeks)
    for index, series in enumerate(spec["series"]):
        ax.bar(positions, series["values"], bottom=base, label=series["label"],
               color=COLOURS[index % len(COLOURS)], width=0.7)
        base = [b + v for b, v in zip(base, series["values"], strict=True)]
    ax.set_xticks(positions, weeks)
    ax.set_title(spec["weeks_title"], fontproperties=_sized(font, 11), loc="left")
    ax.set_xlabel(spec["week_of"], fontproperties=font)
    ax.set_ylabel(spec["count"], fontproperties=font)
    ax.yaxis.get_major_locator().set_params(integer=True)
    if spec["series"]:
        ax.legend(prop=_sized(font, 8), ncols=min(4, len(spec["series"])), loc="upper left",
                  frameon=False)
        top = max(base) or 1
        ax.set_ylim(0, top * 1.35)  # room for the legend above the bars
    else:
        ax.text(0.5, 0.5, spec["empty"], transform=ax.transAxes, ha="center", fontproperties=font)
    _style(ax, font)


def _units(ax: Any, spec: dict[str, Any], font: Any) -> None:
    units = spec["units"]
    ax.set_title(spec["units_title"], fontproperties=_sized(font, 11), loc="left", pad=18)
    if not units:
        ax.text(0.5, 0.5, spec["empty"], transform=ax.transAxes, ha="center", fontproperties=font)
        ax.set_axis_off()
        return
    positions = list(range(len(units)))[::-1]  # the first (best) unit at the top
    resolved = [u["resolved"] for u in units]
    still_open = [u["open"] for u in units]
    ax.barh(positions, resolved, color=RESOLVED_COLOUR, label=spec["resolved"], height=0.65)
    ax.barh(positions, still_open, left=resolved, color=OPEN_COLOUR, label=spec["open"], height=0.65)
    ax.set_yticks(positions, [u["label"] for u in units])
    for position, unit in zip(positions, units, strict=True):
        total = unit["resolved"] + unit["open"]
        if not unit.get("gap") and total:
            ax.text(total, position, f" {unit['resolved']}/{unit['open']}", va="center",
                    fontproperties=_sized(font, 8))
    ax.set_xlabel(spec["count"], fontproperties=font)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(prop=_sized(font, 8), ncols=2, loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False,
              borderaxespad=0.2)
    _style(ax, font)
