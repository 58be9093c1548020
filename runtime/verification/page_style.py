"""The review page's style sheet (served as ``/app.css``): system fonts only, nothing fetched from elsewhere."""

from __future__ import annotations

__all__ = ["PAGE_CSS"]

PAGE_CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9dee3; --soft: #f4f6f8; --accent: #1d4e89;
  --flag: #b45309; --flag-soft: #fff4e5; --changed: #6d28d9; --changed-soft: #f3e8ff; --ok: #1a7f37; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
kbd { display: inline-block; min-width: 1.5em; padding: 0 4px; border: 1px solid var(--line);
  border-bottom-width: 2px; border-radius: 4px; background: #fff; font: 600 12px/1.5 ui-monospace, monospace;
  text-align: center; }
header.bar { position: sticky; top: 0; z-index: 2; display: flex; align-items: center; gap: 18px;
  flex-wrap: wrap; padding: 10px 20px; background: #fff; border-bottom: 3px solid var(--accent); }
header.bar h1 { font-size: 18px; margin: 0; }
.slide-pick select { font: inherit; padding: 3px 6px; max-width: 28em; }
.slide-state { font-weight: 600; color: var(--muted); }
.slide-state.done { color: var(--ok); }
.status { margin-left: auto; padding: 2px 10px; border-radius: 10px; background: var(--soft); }
.status.saving { background: #fef3c7; }
.status.saved { background: #dcfce7; color: var(--ok); }
.status.error { background: #fdecea; color: #b42318; font-weight: 600; }
.user { color: var(--muted); }
.notes, .message { margin: 10px 20px 0; padding: 8px 12px; border-radius: 6px; }
.notes { background: var(--soft); color: var(--muted); }
.message { background: #fdecea; color: #b42318; font-weight: 600; }
main { display: grid; grid-template-columns: minmax(0, 1fr) 360px; gap: 20px; padding: 12px 20px 40px; }
.gallery { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 0 28px; align-content: flex-start; }
.group { flex: 0 1 auto; max-width: 100%; }
.group h2 { font-size: 16px; margin: 14px 0 8px; display: flex; gap: 10px; align-items: baseline; }
.group h2 .count { font-weight: 400; color: var(--muted); font-size: 13px; }
.group h2 .flags { color: var(--flag); font-size: 12px; font-weight: 600; }
.grid { display: flex; flex-wrap: wrap; gap: 10px; }
figure.cell { width: 188px; margin: 0; padding: 3px; border: 2px solid var(--line); border-radius: 6px;
  cursor: pointer; background: #fff; }
figure.cell img, figure.cell .no-image { display: block; width: 178px; height: 178px; object-fit: contain;
  background: var(--soft); border-radius: 4px; }
figure.cell .no-image { display: flex; align-items: center; justify-content: center; color: var(--muted); }
figure.cell.flagged { border-color: var(--flag); background: var(--flag-soft); }
figure.cell.changed { border-color: var(--changed); background: var(--changed-soft); }
figure.cell.confirmed { border-color: var(--ok); }
figure.cell.selected { outline: 4px solid var(--accent); outline-offset: 1px; }
figure.cell figcaption { display: flex; flex-direction: column; font-size: 12px; padding: 3px 2px 0; }
figure.cell .model { color: var(--muted); }
figure.cell .reason { color: var(--flag); font-weight: 600; }
figure.cell .missing { color: #b42318; font-weight: 600; }
figure.cell .human { color: var(--changed); font-weight: 700; }
figure.cell.confirmed .human { color: var(--ok); }
figure.cell .file { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; color: var(--muted); }
.side { position: sticky; top: 64px; align-self: start; }
.side h2 { font-size: 16px; margin: 12px 0 6px; }
table.differential { width: 100%; border-collapse: collapse; }
table.differential th, table.differential td { padding: 2px 6px; border-bottom: 1px solid var(--line);
  text-align: left; }
table.differential .num { text-align: right; font-variant-numeric: tabular-nums; }
table.differential tr.extra td { background: var(--soft); }
table.differential button { font: inherit; width: 100%; text-align: left; padding: 2px 6px; cursor: pointer;
  border: 1px solid var(--line); border-radius: 4px; background: #fff; }
table.differential button:hover { border-color: var(--accent); }
table.differential tr.current button { border-color: var(--accent); background: #e8f0fb; font-weight: 600; }
.total { display: flex; gap: 10px; align-items: center; font-weight: 600; }
.meter { flex: 1; height: 8px; background: var(--soft); border-radius: 4px; overflow: hidden; }
.meter span { display: block; height: 100%; width: 0; background: var(--accent); }
.meter span.reached { background: var(--ok); }
.actions { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin: 8px 0; }
.actions button { font: inherit; padding: 5px 10px; border-radius: 5px; border: 1px solid var(--line);
  background: #fff; cursor: pointer; }
.actions button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
.help { color: var(--muted); font-size: 12px; }
.unreadable { font-size: 12px; color: var(--muted); }
body.locked figure.cell { cursor: default; opacity: 0.9; }
.viewer { position: fixed; inset: 0; z-index: 5; background: rgba(15, 23, 42, 0.85); display: flex;
  flex-direction: column; align-items: center; justify-content: center; gap: 10px; }
.viewer[hidden] { display: none; }
.viewer figure { margin: 0; text-align: center; color: #fff; }
.viewer img { max-width: 92vw; max-height: 82vh; image-rendering: auto; background: #fff; }
.viewer button { font: inherit; padding: 5px 12px; }
@media print { header.bar, .side .actions, .help { display: none; } main { display: block; } }
"""
