"""The review page: one HTML document, its style sheet and its script, all served by hema (nothing external).

The page works with no internet: no fonts, libraries or images from elsewhere, and its Content Security Policy
(:mod:`~hema.runtime.verification.server`) would refuse them. It shows one slide at a time: the gallery of its
cells grouped by the model's class (flagged cells first, with the reason; a cell keeps its place when it is put
into another class, marked with the new class, so that the keyboard's next and previous stay where they were),
and beside it the live differential (count and percent per class, the model's count, the total against the
target) whose class buttons, with their keys, put the selected cell into a class. What each key does is written
on the page (:data:`PAGE_HTML`); the behaviour is in :mod:`~hema.runtime.verification.page_script`.
"""

from __future__ import annotations

from hema.runtime.verification.page_script import PAGE_SCRIPT
from hema.runtime.verification.page_style import PAGE_CSS

__all__ = ["PAGE_CSS", "PAGE_HTML", "PAGE_SCRIPT"]

PAGE_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hema: verify cells</title><link rel="stylesheet" href="/app.css"></head>
<body>
<header class="bar">
  <h1>Cell verification</h1>
  <label class="slide-pick">Slide <select id="slide" aria-label="Slide"></select></label>
  <span id="slide-state" class="slide-state"></span>
  <span id="status" class="status" role="status" aria-live="polite">Loading&hellip;</span>
  <span class="user">User <b id="user"></b></span>
</header>
<div id="notes" class="notes" hidden></div>
<div id="message" class="message" role="alert" hidden></div>
<main>
  <section id="gallery" class="gallery" aria-label="Cells of the slide"></section>
  <aside class="side">
    <h2>Differential</h2>
    <table id="differential" class="differential">
      <thead><tr><th>Key</th><th>Class</th><th class="num">Cells</th><th class="num">%</th>
      <th class="num" title="The model's count">Model</th></tr></thead>
      <tbody></tbody>
    </table>
    <p class="total"><span id="total"></span><span class="meter"><span id="meter"></span></span></p>
    <div class="actions">
      <button type="button" id="undo">Undo <kbd>u</kbd></button>
      <button type="button" id="verify" class="primary">Mark slide verified</button>
      <a id="report" href="/report" target="_blank" rel="noopener">Printable report</a>
    </div>
    <p class="help">Click a cell, then a class (or press its key: the next cell is selected).
      <kbd>&larr;</kbd> <kbd>&rarr;</kbd> previous / next cell, <kbd>Enter</kbd> or <kbd>f</kbd> full size,
      <kbd>u</kbd> undo, <kbd>Esc</kbd> close. A decision counts once the status says saved.</p>
    <div id="unreadable" class="unreadable"></div>
  </aside>
</main>
<div id="viewer" class="viewer" hidden><figure><img id="full" alt=""><figcaption id="full-caption"></figcaption>
</figure><button type="button" id="close">Close <kbd>Esc</kbd></button></div>
<script src="/app.js"></script>
</body></html>
"""
