"""The review page's script (served as ``/app.js``): :mod:`.page_render`'s drawing, then selection, keys, saving,
undo, the full-size view and the other tabs' decisions.

What the page shows as decided is what the server has journalled: a change is sent, and the cell, the
differential and the status line change only when the answer (with every decision since the page's last one)
comes back. Changes are sent one at a time, in order, each naming the revision of the cell or slide it was made
on, so that a change made on an outdated state is refused (HTTP 409) and its message shown instead of
overwriting another tab's decision; the page then shows that other decision. Every few seconds the page asks for
decisions made elsewhere. Undo sends the change back (it is journalled too); Ctrl+Z undoes as well.
"""

from __future__ import annotations

from hema.runtime.verification.page_render import RENDER_SCRIPT

__all__ = ["PAGE_SCRIPT", "POLL_SECONDS"]

POLL_SECONDS = 3

PAGE_SCRIPT = (
    RENDER_SCRIPT
    + r"""
function select(id) {
  const before = state.selected;
  state.selected = id;
  refresh(before === null ? [id] : [before, id]);
  const item = state.figures.get(id);
  if (item) item.scrollIntoView({ block: "nearest" });
}

function move(step) {
  if (!state.order.length) return;
  const at = state.order.indexOf(state.selected);
  select(state.order[Math.max(0, Math.min(state.order.length - 1, at + step))]);
}

function send(make) {
  state.queue = state.queue.then(async () => {
    const change = make();
    if (!change) return;
    setStatus("saving", "Saving\u2026");
    let answer;
    try {
      answer = await api("POST", change.url, { ...change.body, seen: state.seen });
    } catch (error) {
      setStatus("error", "Not saved: the review server cannot be reached");
      return;
    }
    const changed = apply(answer.data.records || []);
    if (answer.status === 200) {
      if (change.undo) state.undo.push(change.undo);
      setStatus("saved", `Saved (decision ${answer.data.rev})`);
      say("");
    } else {
      setStatus("error", "Not saved");
      say(answer.data.message || `The server answered ${answer.status}`);
    }
    refresh(changed);
  });
  return state.queue;
}

function labelChange(id, label, undo) {
  const before = decided(id);
  return {
    url: "/api/label", body: { cell: id, label, base: state.cellRev.get(id) || 0 },
    undo: undo ? null : { kind: "label", cell: id, label: before ? before.label : null },
  };
}

function assign(label, advance) {
  const id = state.selected;
  if (id === null) return say("Select a cell first: click it, or use the arrow keys");
  if (isVerified(state.slide)) return say("This slide is marked verified: reopen it to change its cells");
  send(() => labelChange(id, label, false));
  if (advance) move(1);
}

function slideChange(slide, verified, undo) {
  const before = isVerified(slide);
  return {
    url: "/api/slide", body: { slide, verified, base: state.slideRev.get(slide) || 0 },
    undo: undo ? null : { kind: "slide", slide, verified: before },
  };
}

function toggleVerified() {
  const slide = state.slide;
  send(() => slideChange(slide, !isVerified(slide), false));
}

function undo() {
  send(() => {
    const last = state.undo.pop();
    if (!last) { say("Nothing to undo"); return null; }
    if (last.kind === "label") return labelChange(last.cell, last.label, true);
    return slideChange(last.slide, last.verified, true);
  });
}

function openFull(id) {
  const cell = state.run.cells[id];
  if (!cell.preview) return;
  select(id);
  $("full").src = `/image/${id}`;
  $("full").alt = `${cell.label}, ${cell.name}`;
  const note = cell.missing ? " (image missing: the saved thumbnail)" : "";
  $("full-caption").textContent = `${cell.name}: ${currentLabel(cell)}${note}`;
  $("viewer").hidden = false;
}

function closeFull() { $("viewer").hidden = true; }

function showSlide(index) {
  state.slide = index;
  state.selected = null;
  $("slide").value = String(index);
  renderGallery();
  refresh();
  window.scrollTo(0, 0);
}

function onKey(event) {
  if (event.target.closest && event.target.closest("select, input, textarea")) return;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (!$("viewer").hidden) {
    if (["Escape", "Enter", "f"].includes(key)) { closeFull(); event.preventDefault(); }
    return;
  }
  if ((event.ctrlKey || event.metaKey) && key === "z") { undo(); event.preventDefault(); return; }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (key === "ArrowRight") move(1);
  else if (key === "ArrowLeft") move(-1);
  else if (key === "u") undo();
  else if (key === "Enter" || key === "f") { if (state.selected !== null) openFull(state.selected); }
  else if (state.keys.has(key)) assign(state.keys.get(key), true);
  else return;
  event.preventDefault();
}

function poll() {
  if (document.hidden) return;
  state.queue = state.queue.then(async () => {
    try {
      const answer = await api("GET", `/api/changes?since=${state.seen}`);
      if (answer.status === 200 && answer.data.records.length) refresh(apply(answer.data.records));
    } catch (error) {
      setStatus("error", "The review server cannot be reached");
    }
  });
}

async function start() {
  const answer = await api("GET", "/api/run");
  if (answer.status !== 200) { setStatus("error", answer.data.message || "Cannot load the run"); return; }
  const run = answer.data;
  state.run = run;
  for (const kind of run.classes) state.keys.set(kind.key, kind.name);
  apply(run.records);
  $("user").textContent = run.user;
  const select = $("slide");
  run.slides.forEach((slide, index) => select.append(new Option(slide.name, String(index))));
  select.addEventListener("change", () => { showSlide(Number(select.value)); select.blur(); });
  if (run.notes.length) { $("notes").hidden = false; $("notes").textContent = run.notes.join(" \u00b7 "); }
  $("undo").addEventListener("click", undo);
  $("verify").addEventListener("click", toggleVerified);
  $("close").addEventListener("click", closeFull);
  $("viewer").addEventListener("click", (event) => { if (event.target === $("viewer")) closeFull(); });
  document.addEventListener("keydown", onKey);
  showSlide(0);
  setStatus("saved", state.seen ? `Resumed: ${state.seen} decisions saved` : "Ready");
  document.body.dataset.ready = "1";
  setInterval(poll, """
    + str(POLL_SECONDS * 1000)
    + r""");
}

start().catch((error) => setStatus("error", `The page failed: ${error}`));
"""
)
