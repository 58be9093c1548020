"""The first part of the review page's script: the page's state, what the server's decisions make of it, drawing.

The page's state is what the journal says: ``apply`` takes decisions (from ``/api/run``, from the answer to a
change, from ``/api/changes``) in revision order and keeps, per cell, its latest decision and revision, and per
slide, its verification and the revision of its latest change (what a change is checked against, see
:mod:`~hema.runtime.verification.journal`). The gallery groups a slide's cells by the model's class, flagged cells
first; the differential counts each cell in its decided class, or the model's. ``refresh`` redraws the cells
named (those a decision or the selection changed: a gallery may hold thousands), then the differential.
Everything from the run is set with ``textContent``, never parsed as HTML. The rest of the script is
:mod:`~hema.runtime.verification.page_script`.
"""

from __future__ import annotations

__all__ = ["RENDER_SCRIPT"]

RENDER_SCRIPT = r"""
"use strict";
const $ = (id) => document.getElementById(id);
const HEADERS = { "Content-Type": "application/json", "X-Hema-Review": "1" };
const state = {
  run: null, slide: 0, selected: null, order: [], seen: 0, queue: Promise.resolve(), undo: [], keys: new Map(),
  human: new Map(), cellRev: new Map(), slideRev: new Map(), slideState: new Map(), figures: new Map(),
};

function el(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

async function api(method, url, body) {
  const response = await fetch(url, {
    method, headers: HEADERS, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data;
  try { data = await response.json(); } catch (error) { data = { message: `the server answered ${response.status}` }; }
  return { status: response.status, data };
}

function setStatus(kind, text) {
  const status = $("status");
  status.className = `status ${kind}`;
  status.textContent = text;
}

function say(text) {
  const message = $("message");
  message.hidden = !text;
  message.textContent = text || "";
}

function apply(records) {
  const changed = [];
  for (const record of records) {
    if (record.rev <= state.seen) continue;
    state.seen = record.rev;
    if (record.slide !== null) state.slideRev.set(record.slide, record.rev);
    if (record.kind === "label" && record.cell !== null) {
      state.cellRev.set(record.cell, record.rev);
      state.human.set(record.cell, record.label === null ? null : record);
      changed.push(record.cell);
    } else if (record.kind === "slide" && record.slide !== null) {
      state.slideState.set(record.slide, record);
    }
  }
  return changed;
}

const decided = (id) => state.human.get(id) || null;
const currentLabel = (cell) => (decided(cell.id) ? decided(cell.id).label : cell.label);
const verifiedState = (slide) => state.slideState.get(slide) || null;
const isVerified = (slide) => Boolean(verifiedState(slide) && verifiedState(slide).verified);
const slideCells = () => state.run.slides[state.slide].cells.map((id) => state.run.cells[id]);

function figure(cell) {
  const item = el("figure", cell.review ? "cell flagged" : "cell");
  item.id = `cell-${cell.id}`;
  item.dataset.id = cell.id;
  if (cell.preview) {
    const img = el("img");
    img.loading = "lazy";
    img.decoding = "async";
    img.width = 178;
    img.height = 178;
    img.alt = `${cell.label}, ${cell.name}`;
    img.src = `/thumb/${cell.id}`;
    item.append(img);
  } else {
    item.append(el("div", "no-image", "no image"));
  }
  const caption = el("figcaption");
  caption.append(el("span", "model", `${cell.label} ${Math.round(cell.confidence * 100)}\u00a0%`));
  if (cell.review) caption.append(el("span", "reason", `Review: ${cell.review}`));
  if (cell.missing) caption.append(el("span", "missing", "image missing"));
  caption.append(el("span", "human"));
  const file = el("span", "file", cell.name);
  file.title = cell.path;
  caption.append(file);
  item.append(caption);
  item.addEventListener("click", () => select(cell.id));
  item.addEventListener("dblclick", () => openFull(cell.id));
  return item;
}

function paint(cell) {
  const item = state.figures.get(cell.id);
  if (!item) return;
  const human = decided(cell.id);
  const mark = item.querySelector(".human");
  item.classList.toggle("changed", Boolean(human) && human.label !== cell.label);
  item.classList.toggle("confirmed", Boolean(human) && human.label === cell.label);
  item.classList.toggle("selected", state.selected === cell.id);
  mark.textContent = human ? `${human.label === cell.label ? "\u2713" : "\u2192"} ${human.label}` : "";
  mark.title = human ? `${human.user}, ${human.time}` : "";
}

function renderGallery() {
  const gallery = $("gallery");
  const cells = slideCells().filter((cell) => cell.ok);
  const groups = [];
  state.order = [];
  state.figures = new Map();
  for (const kind of state.run.classes) {
    const members = cells.filter((cell) => cell.label === kind.name);
    if (!members.length) continue;
    members.sort((a, b) => Number(Boolean(b.review)) - Number(Boolean(a.review)) || a.id - b.id);
    const group = el("section", "group");
    const title = el("h2", "", kind.name);
    const flagged = members.filter((cell) => cell.review).length;
    title.append(el("span", "count", `${members.length} cell${members.length === 1 ? "" : "s"}`));
    if (flagged) title.append(el("span", "flags", `${flagged} flagged`));
    const grid = el("div", "grid");
    for (const cell of members) {
      const item = figure(cell);
      state.figures.set(cell.id, item);
      state.order.push(cell.id);
      grid.append(item);
    }
    group.append(title, grid);
    groups.push(group);
  }
  gallery.replaceChildren(...groups);
  const unreadable = slideCells().filter((cell) => !cell.ok);
  const list = $("unreadable");
  list.replaceChildren();
  if (unreadable.length) {
    list.append(el("h2", "", `Unreadable files, not counted (${unreadable.length})`));
    for (const cell of unreadable) list.append(el("div", "", `${cell.name}: ${cell.error}`));
  }
  if (!state.order.includes(state.selected)) state.selected = state.order.length ? state.order[0] : null;
}

function renderDifferential() {
  const cells = slideCells().filter((cell) => cell.ok);
  const counts = new Map(), model = new Map();
  for (const cell of cells) {
    counts.set(currentLabel(cell), (counts.get(currentLabel(cell)) || 0) + 1);
    model.set(cell.label, (model.get(cell.label) || 0) + 1);
  }
  const selected = state.selected === null ? null : state.run.cells[state.selected];
  const rows = state.run.classes.map((kind) => {
    const row = el("tr", kind.model ? "" : "extra");
    if (selected && currentLabel(selected) === kind.name) row.classList.add("current");
    const key = el("td");
    key.append(el("kbd", "", kind.key));
    const name = el("td");
    const button = el("button", "", kind.name);
    button.type = "button";
    button.dataset.label = kind.name;
    button.title = `Put the selected cell into ${kind.name} (key ${kind.key})`;
    button.addEventListener("click", () => assign(kind.name, false));
    name.append(button);
    const count = counts.get(kind.name) || 0;
    const percent = cells.length ? ((100 * count) / cells.length).toFixed(1) : "0.0";
    row.append(key, name, el("td", "num", String(count)), el("td", "num", percent),
               el("td", "num", String(model.get(kind.name) || 0)));
    return row;
  });
  $("differential").tBodies[0].replaceChildren(...rows);
  const target = state.run.target;
  $("total").textContent = `${cells.length} of ${target} cells`;
  $("meter").style.width = `${Math.min(100, (100 * cells.length) / target)}%`;
  $("meter").classList.toggle("reached", cells.length >= target);
}

function renderSlideState() {
  const done = verifiedState(state.slide);
  const locked = isVerified(state.slide);
  document.body.classList.toggle("locked", locked);
  $("slide-state").className = locked ? "slide-state done" : "slide-state";
  $("slide-state").textContent = locked ? `Verified by ${done.user} at ${done.time}` : "Not verified yet";
  $("verify").textContent = locked ? "Reopen slide" : "Mark slide verified";
  $("report").href = `/report?slide=${state.slide}`;
  const select = $("slide");
  state.run.slides.forEach((slide, index) => {
    select.options[index].textContent = `${isVerified(index) ? "\u2713 " : ""}${slide.name} (${slide.cells.length})`;
  });
}

function refresh(ids) {
  for (const id of ids === undefined ? state.order : ids) paint(state.run.cells[id]);
  renderDifferential();
  renderSlideState();
}
"""
