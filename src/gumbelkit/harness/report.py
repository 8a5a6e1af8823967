"""One report renderer: a document of sections to Markdown, self-contained HTML, JSON and CSV.

A document opens with its own blocks (the lab's answer, say), then gives one section per
experiment: the claims it tests, its set-up, figures, tables and verdict. ``results.json`` holds
what the recorded runs determine (configurations, summaries, verdicts: no wall times), so a resumed
sweep writes the same file as an uninterrupted one; it is strict JSON (a non-finite number is
written as ``null``). Every table is also written as CSV, an interval as three columns (``name``,
``name_low``, ``name_high``).
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import enum
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .protocol import Claim, Figure, Table, Verdict
from .statistics import Decision, Interval

__all__ = ["Bullets", "ClaimsTable", "Document", "Paragraph", "Section", "format_cell",
           "markdown_blocks", "markdown_cell", "markdown_table", "meta_line",
           "sections_from_results", "to_jsonable", "write_report"]

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.5; color: #222; }
blockquote { border-left: 4px solid #bbb; margin: 0.5rem 0; padding: 0.2rem 1rem; color: #444; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; }
.holds { color: #1a7f37; } .does-not-hold { color: #cf222e; } .inconclusive { color: #9a6700; }
.depends { color: #0969da; }
.badge { display: inline-block; padding: 0.05rem 0.5rem; border-radius: 0.8rem; color: #fff;
         font-size: 0.8rem; white-space: nowrap; }
.badge.holds { background: #1a7f37; } .badge.does-not-hold { background: #cf222e; }
.badge.inconclusive { background: #9a6700; } .badge.depends { background: #0969da; }
.badge.not-run { background: #6e7781; }
table.claims td, table.claims th { text-align: left; vertical-align: top; }
figcaption { font-size: 0.9rem; color: #555; }
"""


@dataclass
class Section:
    """Everything the report says about one experiment."""

    id: str
    title: str
    setup: str
    tables: list[Table]
    figures: list[Figure]
    config: dict[str, Any]
    summary: Any
    verdicts: list[Verdict] = field(default_factory=list)
    claims: tuple[Claim, ...] = ()
    claim_summary: str = ""
    not_run: str = ""  # why the experiment did not run here (then nothing else is filled in)

    @property
    def anchor(self) -> str:
        return self.id.lower()

    def decided(self, verdict: Verdict) -> tuple[Claim, ...]:
        """The claims ``verdict`` decides (all of the section's when it names none)."""
        return verdict.claims or self.claims


@dataclass(frozen=True)
class Paragraph:
    text: str
    strong: bool = False


@dataclass(frozen=True)
class Bullets:
    """A list whose items link to a section: ``(section id, text)``."""

    items: list[tuple[str, str]]


@dataclass(frozen=True)
class ClaimsTable:
    """One row per claim: who made it, the quote, the verdict, the number that decides it, and a
    link to the section with the evidence: ``(section id, claim, verdict)``, the verdict None for
    an experiment that did not run."""

    rows: list[tuple[str, Claim, Verdict | None]]


Block = Paragraph | Bullets | ClaimsTable
QUOTE_SHOWN = 220  # characters of a quote in the claims table (the section quotes it whole)


@dataclass
class Document:
    title: str
    sections: list[Section]
    meta: dict[str, Any]
    quote: str = ""
    intro: list[Block] = field(default_factory=list)
    intro_heading: str = ""


def to_jsonable(value: Any) -> Any:
    """Plain JSON data: dataclasses as dicts, enums as their values, NumPy as Python numbers,
    tuples as lists, non-finite floats as None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_cell(value: Any) -> str:
    if isinstance(value, Interval):
        return value.format()
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def meta_line(meta: dict[str, Any]) -> str:
    """Where, how and how long a document's runs ran, in a sentence."""
    text = (f"Produced by `{meta.get('command', 'gumbelkit')}` on "
            f"{meta.get('machine', 'an unknown machine')}")
    if meta.get("executor"):
        text += f", {meta['executor']}"
    text += f", in {meta.get('wall_seconds', 0):.0f} s"
    if meta.get("reused"):
        text += f" ({meta['reused']} of {meta['runs']} runs reused from earlier runs)"
    return text + "."


def _verdict_line(section: Section, verdict: Verdict) -> str:
    if verdict.claims and len(section.claims) > 1:
        who = " and ".join(dict.fromkeys(c.source for c in verdict.claims))
        return f"Verdict on the claim of {who}: it {verdict.decision.word}."
    return f"Verdict: the claim {verdict.decision.word}."


def _shown(quote: str) -> str:
    return quote if len(quote) <= QUOTE_SHOWN else quote[:QUOTE_SHOWN].rsplit(" ", 1)[0] + " …"


def _css(decision: Decision) -> str:
    return decision.value.replace(" ", "-")


def _badge(verdict: Verdict | None) -> tuple[str, str]:
    """The verdict's word and CSS class in the claims table."""
    return ("not run", "not-run") if verdict is None else (verdict.decision.value,
                                                           _css(verdict.decision))


def _number(verdict: Verdict | None) -> str:
    return (verdict.number if verdict else "") or "—"


def markdown_blocks(blocks: list[Block], link: str = "#") -> list[str]:
    """Paragraphs, linked lists and the claims table as Markdown lines; ``link`` prefixes the
    anchors (another file's name, to link into it)."""
    out = []
    for block in blocks:
        if isinstance(block, Paragraph):
            out += [f"**{block.text}**" if block.strong else block.text, ""]
        elif isinstance(block, Bullets):
            out += [f"- [{sid}]({link}{sid.lower()}) {text}" for sid, text in block.items]
            out.append("")
        else:
            out += ["| who | claim | verdict | deciding number | evidence |",
                    "|---|---|---|---|---|"]
            out += [f"| {claim.source} | {markdown_cell(_shown(claim.quote))} | "
                    f"**{_badge(verdict)[0]}** | {markdown_cell(_number(verdict))} | "
                    f"[{sid}]({link}{sid.lower()}) |" for sid, claim, verdict in block.rows]
            out.append("")
    return out


def markdown_cell(text: str) -> str:
    """``text`` as one cell of a Markdown table (pipes escaped, on one line)."""
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(document: Document) -> str:
    out = [f"# {document.title}", ""]
    if document.quote:
        out += [f"> {document.quote}", ""]
    if document.intro_heading:
        out += [f"## {document.intro_heading}", ""]
    out += markdown_blocks(document.intro)
    out += [meta_line(document.meta), ""]
    for s in document.sections:
        out += [f'<a id="{s.anchor}"></a>', f"## {s.id}. {s.title}", ""]
        if s.not_run:
            out += [f"**Not run.** {s.not_run}", ""]
            continue
        if s.claims:
            out += ["**Claim tested**", ""]
            for claim in s.claims:
                out += [f"> {claim.quote}", f">\n> — {claim.source}", ""]
        out += ["**Set-up.** " + s.setup, ""]
        for figure in s.figures:
            out += [f"![{figure.caption}](figures/{figure.filename})", "", f"*{figure.caption}*",
                    ""]
        for table in s.tables:
            out += [markdown_table(table), ""]
        for verdict in s.verdicts:
            out += [f"**{_verdict_line(s, verdict)}** {verdict.answer}", ""]
            out += [" ".join(filter(None, (verdict.detail, verdict.correction))), ""]
    return "\n".join(out)


def markdown_table(table: Table) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(format_cell(c) for c in row) + " |" for row in table.rows]
    if table.caption:
        lines.append(f"\n*{table.caption}*")
    return "\n".join(lines)


def _html_table(table: Table) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(format_cell(c))}</td>" for c in row) + "</tr>"
                   for row in table.rows)
    caption = f"<caption>{esc(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _embedded_image(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def render_html(document: Document, figure_dir: Path) -> str:
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{esc(document.title)}</title>", f"<style>{STYLE}</style></head><body>",
           f"<h1>{esc(document.title)}</h1>"]
    if document.quote:
        out.append(f"<blockquote>{esc(document.quote)}</blockquote>")
    if document.intro_heading:
        out.append(f'<h2 id="answer">{esc(document.intro_heading)}</h2>')
    for block in document.intro:
        if isinstance(block, Paragraph):
            text = f"<strong>{esc(block.text)}</strong>" if block.strong else esc(block.text)
            out.append(f"<p>{text}</p>")
        elif isinstance(block, Bullets):
            out.append("<ul>" + "".join(
                f'<li><a href="#{sid.lower()}">{esc(sid)}</a> {esc(text)}</li>'
                for sid, text in block.items) + "</ul>")
        else:
            out.append('<table class="claims"><thead><tr><th>who</th><th>claim</th>'
                       "<th>verdict</th><th>deciding number</th><th>evidence</th></tr></thead>"
                       "<tbody>" + "".join(
                           f'<tr class="claim"><td>{esc(claim.source)}</td>'
                           f"<td>{esc(_shown(claim.quote))}</td>"
                           f'<td><span class="badge {_badge(verdict)[1]}">'
                           f"{esc(_badge(verdict)[0])}</span></td>"
                           f"<td>{esc(_number(verdict))}</td>"
                           f'<td><a href="#{sid.lower()}">{esc(sid)}</a></td></tr>'
                           for sid, claim, verdict in block.rows) + "</tbody></table>")
    out.append(f"<p>{esc(meta_line(document.meta))}</p>")
    for s in document.sections:
        out.append(f'<section id="{s.anchor}"><h2>{esc(s.id)}. {esc(s.title)}</h2>')
        if s.not_run:
            out.append(f"<p><strong>Not run.</strong> {esc(s.not_run)}</p></section>")
            continue
        if s.claims:
            out.append("<h3>Claim tested</h3>")
            out += [f"<blockquote>{esc(c.quote)}<br>— {esc(c.source)}</blockquote>"
                    for c in s.claims]
        out.append(f"<p><strong>Set-up.</strong> {esc(s.setup)}</p>")
        out += [_embedded_image(figure_dir / f.filename, f.caption) for f in s.figures]
        out += [_html_table(t) for t in s.tables]
        for verdict in s.verdicts:
            out.append(f'<p class="{_css(verdict.decision)}"><strong>'
                       f"{esc(_verdict_line(s, verdict))}</strong> {esc(verdict.answer)}</p>")
            out.append(f"<p>{esc(' '.join(filter(None, (verdict.detail, verdict.correction))))}"
                       "</p>")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


def results_json(document: Document) -> dict[str, Any]:
    return to_jsonable({
        "title": document.title,
        "order": [s.id for s in document.sections],  # the keys below are sorted
        "experiments": {s.id: {"title": s.title, "config": s.config, "summary": s.summary,
                               "claim_summary": s.claim_summary, "claims": s.claims,
                               "verdicts": s.verdicts, "not_run": s.not_run}
                        for s in document.sections},
    })


def write_csv(path: Path, table: Table) -> Path:
    """A table as CSV: numbers as they are, an interval as ``name, name_low, name_high``."""
    intervals = [any(isinstance(row[i], Interval) for row in table.rows)
                 for i in range(len(table.columns))]
    header = []
    for name, interval in zip(table.columns, intervals, strict=True):
        header += [name, f"{name}_low", f"{name}_high"] if interval else [name]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in table.rows:
            cells = []
            for cell, interval in zip(row, intervals, strict=True):
                if interval:
                    cells += ([cell.estimate, cell.low, cell.high] if isinstance(cell, Interval)
                              else [cell, "", ""])
                else:
                    cells.append("" if cell is None else cell)
            writer.writerow(cells)
    return path


def sections_from_results(results: dict[str, Any]) -> list[Section]:
    """The sections of a ``results.json`` (without their tables and figures): what a document's
    opening blocks are built from, so that they can be rebuilt from recorded results alone."""
    def claim(data: dict[str, Any]) -> Claim:
        return Claim(**data)

    sections = []
    for sid in results["order"]:
        entry = results["experiments"][sid]
        verdicts = [Verdict(Decision(v["decision"]), v["answer"], v["detail"], v["number"],
                            tuple(map(claim, v["claims"])), v["level"], v["family"])
                    for v in entry["verdicts"]]
        sections.append(Section(sid, entry["title"], "", [], [], entry["config"],
                                entry["summary"], verdicts, tuple(map(claim, entry["claims"])),
                                entry["claim_summary"], entry["not_run"]))
    return sections


def write_report(out_dir: Path, document: Document) -> dict[str, Path]:
    """Write report.md, report.html, results.json (what the runs determine), run.json (how they
    ran: command, machine, executor, wall time) and tables/*.csv into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / "report.md", "html": out_dir / "report.html",
             "results": out_dir / "results.json", "run": out_dir / "run.json"}
    paths["markdown"].write_text(render_markdown(document))
    paths["html"].write_text(render_html(document, out_dir / "figures"))
    paths["results"].write_text(json.dumps(results_json(document), indent=2, sort_keys=True,
                                           allow_nan=False))
    paths["run"].write_text(json.dumps(to_jsonable(document.meta), indent=2, allow_nan=False))
    tables = out_dir / "tables"
    for s in document.sections:
        for i, table in enumerate(s.tables, 1):
            tables.mkdir(exist_ok=True)
            write_csv(tables / f"{s.anchor}-{i}.csv", table)
    return paths
