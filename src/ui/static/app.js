// The run page, live: while a run goes on, its steps' states (in the table
// and the graph) and the chosen step's log follow the run's records.
"use strict";
(function () {
  const root = document.getElementById("run");
  if (!root) return;
  const run = root.dataset.run;
  let live = root.dataset.live === "true";
  const logEl = document.getElementById("log");
  const logState = document.getElementById("log-state");
  const pick = document.getElementById("log-step");
  let logStep = pick ? pick.value : null;
  let logFrom = 0;
  let logDone = false;

  function text(el, s) { if (el && el.textContent !== s) el.textContent = s; }

  function setBadge(el, status) {
    if (!el) return;
    el.className = "badge st-" + status;
    text(el, status);
  }

  function applyState(st) {
    setBadge(document.getElementById("run-status"), st.status);
    for (const s of st.steps) {
      const row = document.querySelector('tr[data-step="' + CSS.escape(s.name) + '"]');
      if (row) {
        setBadge(row.querySelector(".badge"), s.status);
        text(row.children[2], String(s.attempts));
        text(row.children[3], s.duration);
      }
      const node = document.querySelector('g[data-step="' + CSS.escape(s.name) + '"]');
      if (node) node.setAttribute("class", "node st-" + s.status);
    }
    root.dataset.status = st.status;
    if (st.status !== "running") live = false;
  }

  async function poll() {
    try {
      const r = await fetch("/api/runs/" + encodeURIComponent(run), { cache: "no-store" });
      if (r.ok) applyState(await r.json());
    } catch (e) { /* the server may be restarting: try again */ }
    if (live) setTimeout(poll, 1000);
    else root.dataset.settled = "true";
  }

  async function followLog() {
    if (!logStep || !logEl) return;
    const step = logStep;
    try {
      const r = await fetch("/api/runs/" + encodeURIComponent(run) + "/log/" + encodeURIComponent(step) + "?from=" + logFrom, { cache: "no-store" });
      if (r.ok && step === logStep) {
        const c = await r.json();
        if (c.text) {
          const atEnd = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 4;
          logEl.append(c.text);
          if (atEnd) logEl.scrollTop = logEl.scrollHeight;
        }
        logFrom = c.next;
        logDone = c.done;
        text(logState, c.done ? "" : "following…");
      }
    } catch (e) { /* try again */ }
    if (step === logStep && !logDone) setTimeout(followLog, 700);
  }

  if (pick) {
    pick.addEventListener("change", function () {
      logStep = pick.value;
      logFrom = 0;
      logDone = false;
      logEl.textContent = "";
      followLog();
    });
  }
  poll();
  followLog();
})();
