"""The inline style sheet of ``report.html`` (:mod:`hema.runtime.reports.html_page`): no web fonts, no external
files."""

from __future__ import annotations

__all__ = ["REPORT_CSS"]

REPORT_CSS = """
:root {
  --ink: #1f2933; --muted: #616e7c; --line: #d9dee3; --soft: #f4f6f8; --accent: #1d4e89;
  --flag: #b45309; --flag-soft: #fff4e5; --error: #b42318; --error-soft: #fdecea;
}
* { box-sizing: border-box; }
body {
  margin: 0; color: var(--ink); background: #fff; line-height: 1.4;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
main { max-width: 1240px; margin: 0 auto; padding: 0 28px 40px; }
header.report { border-bottom: 3px solid var(--accent); padding: 22px 28px 16px; margin-bottom: 8px; }
header.report .inner { max-width: 1184px; margin: 0 auto; display: flex; gap: 12px 40px; align-items: flex-end;
  justify-content: space-between; flex-wrap: wrap; }
header.report .title { flex: 1 1 380px; }
h1 { font-size: 22px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 18px; margin: 0; }
h2 .kicker { font-size: 12px; font-weight: 600; color: var(--muted); text-transform: uppercase;
  letter-spacing: 0.06em; margin-right: 6px; }
h3 { font-size: 15px; margin: 22px 0 8px; }
.subtitle { margin: 0; color: var(--muted); }
dl.meta { display: grid; grid-template-columns: auto auto; gap: 2px 14px; margin: 0; font-size: 13px; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; font-variant-numeric: tabular-nums; }
nav.slides { margin: 14px 0 4px; font-size: 13px; color: var(--muted); }
nav.slides a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
nav.slides a:hover { text-decoration: underline; }
section.slide { border: 1px solid var(--line); border-radius: 6px; margin: 18px 0; padding: 16px 20px 20px; }
section.slide > header { display: flex; align-items: baseline; gap: 14px; flex-wrap: wrap;
  border-bottom: 1px solid var(--line); padding-bottom: 8px; margin-bottom: 12px; }
.slide-facts { color: var(--muted); font-size: 13px; }
.pill { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; font-weight: 600; }
.pill.flag { background: var(--flag-soft); color: var(--flag); }
.shift-warning { flex-basis: 100%; margin: 8px 0 0; padding: 8px 12px; border-left: 4px solid var(--error);
  background: var(--error-soft); color: var(--error); }
.pill.error { background: var(--error-soft); color: var(--error); }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.differential { min-width: 520px; }
table th, table td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; }
table th { font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; color: var(--muted);
  font-weight: 600; background: var(--soft); }
table td.num, table th.num { text-align: right; }
table tr.zero td { color: #9aa5b1; }
table tfoot td { font-weight: 600; border-bottom: none; }
table tfoot tr.apart td { font-weight: 400; color: var(--muted); }
td.bar { width: 180px; }
.bar span { display: block; height: 9px; border-radius: 2px; background: var(--accent); opacity: 0.75; }
.note { color: var(--muted); font-size: 12px; margin: 6px 0 0; }
details.group { margin: 10px 0 0; }
details.group > summary { cursor: pointer; padding: 6px 8px; background: var(--soft); border-radius: 4px;
  font-weight: 600; list-style-position: inside; }
details.group > summary .pill { margin-left: 8px; }
details.group > summary .count { color: var(--muted); font-weight: 400; margin-left: 6px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, 136px); gap: 10px; padding: 10px 2px 4px; }
figure.cell { margin: 0; padding: 6px; border: 1px solid var(--line); border-radius: 4px; background: #fff;
  break-inside: avoid; }
figure.cell.flagged { border: 2px solid var(--flag); background: var(--flag-soft); padding: 5px; }
figure.cell img, figure.cell .no-preview { display: block; width: 96px; height: 96px; margin: 0 auto;
  object-fit: contain; background: var(--soft); }
figure.cell .no-preview { font-size: 11px; color: var(--muted); text-align: center; line-height: 96px; }
figcaption { font-size: 11.5px; margin-top: 5px; line-height: 1.3; }
figcaption .line { display: flex; justify-content: space-between; gap: 4px; }
figcaption .label { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
figcaption .conf { font-variant-numeric: tabular-nums; white-space: nowrap; }
figcaption .file { display: block; color: var(--muted); overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; }
figcaption .reason { display: block; color: var(--flag); font-weight: 600; }
table.errors td.file { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 12px; word-break: break-all; }
table.errors td.reason { color: var(--error); }
footer.report { max-width: 1240px; margin: 0 auto; padding: 14px 28px 28px; color: var(--muted);
  font-size: 12px; border-top: 1px solid var(--line); }
@media print {
  header.report { padding-top: 0; }
  section.slide { break-inside: auto; border: none; padding: 0; }
  details.group > summary { list-style: none; }
  nav.slides { display: none; }
}
"""
