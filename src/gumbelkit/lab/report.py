"""The lab's report: report.md, a self-contained report.html, and results.json.

The report opens with the answer to the seed thread's question, assembled from the verdicts (each
sentence linking to its experiment), then gives one section per experiment: claim, set-up,
figures, tables, verdict. results.json holds only what the recorded runs determine (no wall times),
so a resumed lab writes the same file as an uninterrupted one.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .experiment import Claim, Figure, Table, Verdict

QUESTION = (
    "From a practical and theoretical perspective, when is it beneficial to incorporate Gumbel "
    "noise into a neural network, as opposed to just using Softmax with temperature?"
)

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.5; color: #222; }
blockquote { border-left: 4px solid #bbb; margin: 0.5rem 0; padding: 0.2rem 1rem; color: #444; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; }
.holds { color: #1a7f37; } .does-not-hold { color: #cf222e; } .inconclusive { color: #9a6700; }
figcaption { font-size: 0.9rem; color: #555; }
"""


@dataclass
class Section:
    """Everything the report says about one experiment."""

    id: str
    title: str
    claim_summary: str
    claims: tuple[Claim, ...]
    setup: str
    verdict: Verdict
    tables: list[Table]
    figures: list[Figure]
    config: dict[str, Any]
    summary: dict[str, Any]

    @property
    def anchor(self) -> str:
        return self.id.lower()


GROUPS = (
    ("holds", "The thread is right, measured here:"),
    ("does not hold", "The thread is wrong, measured here:"),
    ("inconclusive", "The data here cannot decide:"),
)


def answer_groups(sections: list[Section]) -> list[tuple[str, list[Section]]]:
    """The opening answer: the claims grouped by their computed verdicts (empty groups left out)."""
    groups = [(heading, [s for s in sections if s.verdict.label == label])
              for label, heading in GROUPS]
    return [(heading, members) for heading, members in groups if members]


def evidence_lines(sections: list[Section]) -> list[tuple[str, str]]:
    """(experiment id, sentence) pairs: each verdict's sentence with its numbers."""
    return [(s.id, f"{s.title} — the claim {s.verdict.label}: {s.verdict.answer}")
            for s in sections]


def results_json(sections: list[Section]) -> dict[str, Any]:
    return {
        "question": QUESTION,
        "experiments": {
            s.id: {
                "title": s.title,
                "config": s.config,
                "summary": s.summary,
                "verdict": {"holds": s.verdict.holds, "label": s.verdict.label,
                            "answer": s.verdict.answer, "detail": s.verdict.detail},
            }
            for s in sections
        },
    }


def _markdown_table(table: Table) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    if table.caption:
        lines.append(f"\n*{table.caption}*")
    return "\n".join(lines)


def markdown_answer(sections: list[Section]) -> list[str]:
    """The answer section's lines (also what ``gumbelkit lab`` prints)."""
    out = []
    for heading, members in answer_groups(sections):
        out += [f"**{heading}**", ""]
        out += [f"- [{s.id}](#{s.anchor}) {s.claim_summary}" for s in members]
        out.append("")
    return out


def render_markdown(sections: list[Section], meta: dict[str, Any]) -> str:
    out = ["# When does Gumbel noise help, compared with softmax with temperature?", "",
           f"> {QUESTION}", "", "## The answer", ""]
    out += markdown_answer(sections)
    out += [_meta_line(meta), "", "### The evidence, claim by claim", ""]
    out += [f"- [{eid}](#{eid.lower()}) {sentence}" for eid, sentence in evidence_lines(sections)]
    out.append("")
    for s in sections:
        out += [f'<a id="{s.anchor}"></a>', f"## {s.id}. {s.title}", "", "**Claim tested**", ""]
        for claim in s.claims:
            out += [f"> {claim.quote}", f">\n> — {claim.source}", ""]
        out += ["**Set-up.** " + s.setup, ""]
        for figure in s.figures:
            out += [f"![{figure.caption}](figures/{figure.filename})", "", f"*{figure.caption}*",
                    ""]
        for table in s.tables:
            out += [_markdown_table(table), ""]
        out += [f"**Verdict: the claim {s.verdict.label}.** {s.verdict.answer}", ""]
        if s.verdict.detail:
            out += [s.verdict.detail, ""]
    return "\n".join(out)


def _meta_line(meta: dict[str, Any]) -> str:
    return ("Produced by `" + meta.get("command", "gumbelkit lab") + "` on " +
            meta.get("machine", "an unknown machine") + f" in {meta.get('wall_seconds', 0):.0f} s"
            + (f" ({meta['reused']} runs reused from an earlier run)" if meta.get("reused") else "")
            + ".")


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in table.rows)
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _embedded_image(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def render_html(sections: list[Section], meta: dict[str, Any], figure_dir: Path) -> str:
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>gumbelkit lab report</title>", f"<style>{STYLE}</style></head><body>",
           "<h1>When does Gumbel noise help, compared with softmax with temperature?</h1>",
           f"<blockquote>{esc(QUESTION)}</blockquote>", '<h2 id="answer">The answer</h2>']
    for heading, members in answer_groups(sections):
        out.append(f"<p><strong>{esc(heading)}</strong></p><ul>")
        out += [f'<li><a href="#{s.anchor}">{esc(s.id)}</a> {esc(s.claim_summary)}</li>'
                for s in members]
        out.append("</ul>")
    out += [f"<p>{esc(_meta_line(meta))}</p>", "<h3>The evidence, claim by claim</h3><ul>"]
    for eid, sentence in evidence_lines(sections):
        out.append(f'<li><a href="#{eid.lower()}">{esc(eid)}</a> {esc(sentence)}</li>')
    out.append("</ul>")
    for s in sections:
        css = s.verdict.label.replace(" ", "-")
        out += [f'<section id="{s.anchor}"><h2>{esc(s.id)}. {esc(s.title)}</h2>',
                "<h3>Claim tested</h3>"]
        for claim in s.claims:
            out.append(f"<blockquote>{esc(claim.quote)}<br>— {esc(claim.source)}</blockquote>")
        out.append(f"<p><strong>Set-up.</strong> {esc(s.setup)}</p>")
        out += [_embedded_image(figure_dir / f.filename, f.caption) for f in s.figures]
        out += [_html_table(t) for t in s.tables]
        out.append(f'<p class="{css}"><strong>Verdict: the claim {esc(s.verdict.label)}.'
                   f"</strong> {esc(s.verdict.answer)}</p>")
        if s.verdict.detail:
            out.append(f"<p>{esc(s.verdict.detail)}</p>")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(out_dir: Path, sections: list[Section], meta: dict[str, Any]) -> dict[str, Path]:
    """Write report.md, report.html and results.json into ``out_dir``; return their paths."""
    paths = {"markdown": out_dir / "report.md", "html": out_dir / "report.html",
             "results": out_dir / "results.json"}
    paths["markdown"].write_text(render_markdown(sections, meta))
    paths["html"].write_text(render_html(sections, meta, out_dir / "figures"))
    paths["results"].write_text(json.dumps(results_json(sections), indent=2, sort_keys=True))
    return paths
