/* Job detail: syntax highlighting, the run console's clock and announcements, and the
 * live log pane.
 * Lines arrive in "logs" events; each has a seq, so a missing one is fetched from
 * the server (lines?after=N) and nothing is shown twice or out of order.
 * The status strip (#job-summary, a live region) carries the run's state: while the
 * job waits or runs, #job-elapsed ticks from data-since (on the server's clock,
 * data-now); when a refresh brings a new status, #job-announce says it politely
 * ("Job succeeded in 1.20 s", worded by the server in data-announce). */
(function () {
  "use strict";
  document.querySelectorAll("pre[data-highlight]").forEach(function (pre) {
    if (window.CodeMirror && CodeMirror.runMode) {
      var text = pre.textContent;
      pre.textContent = "";
      CodeMirror.runMode(text, pre.getAttribute("data-highlight"), pre);
    }
  });

  // -- the status strip: a ticking clock, announcements, a tall log while it runs -----
  function seconds(ms) {
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    var s = Math.floor(ms / 1000);
    return Math.floor(s / 60) + " min " + (s % 60) + " s";
  }
  var skew = 0, skewOf = null;  // server clock minus this browser's, from the strip's data-now
  function tick() {
    var el = document.getElementById("job-elapsed");
    if (!el || !el.hasAttribute("data-since")) return;
    var now = el.getAttribute("data-now");
    if (now && now !== skewOf) { skewOf = now; skew = new Date(now).getTime() - Date.now(); }
    var since = new Date(el.getAttribute("data-since")).getTime();
    if (isNaN(since)) return;
    el.textContent = (el.getAttribute("data-prefix") || "") + seconds(Math.max(0, Date.now() + skew - since));
  }
  var strip = document.querySelector("#job-summary .summary");
  var shownStatus = strip && strip.getAttribute("data-status");
  if (strip) {
    tick();
    setInterval(tick, 200);
    document.addEventListener("live:refreshed", function (e) {
      if (e.detail.region !== "job-summary") return;
      var now = document.querySelector("#job-summary .summary");
      if (!now) return;
      tick();
      var card = document.getElementById("log-card");
      if (card) card.classList.toggle("running", now.getAttribute("data-finished") !== "1");
      var status = now.getAttribute("data-status");
      if (status === shownStatus) return;
      shownStatus = status;
      var say = document.getElementById("job-announce");
      if (say) say.textContent = now.getAttribute("data-announce") || ("Job " + status);
    });
  }

  var log = document.getElementById("log");
  if (!log) return;
  var follow = document.getElementById("log-follow");
  var jump = document.getElementById("log-jump");
  var empty = document.getElementById("log-empty");
  var count = document.getElementById("log-count");
  var last = parseInt(log.getAttribute("data-last-seq") || "0", 10);
  var fetching = false, fetchAgain = false;

  function atBottom() { return log.scrollTop + log.clientHeight >= log.scrollHeight - 4; }
  function toBottom() { log.scrollTop = log.scrollHeight; }
  log.addEventListener("scroll", function () {
    follow.checked = atBottom();   // scrolling up stops following; back at the bottom resumes
    if (follow.checked) jump.hidden = true;
  });
  follow.addEventListener("change", function () { if (follow.checked) { toBottom(); jump.hidden = true; } });
  jump.addEventListener("click", function () { follow.checked = true; toBottom(); jump.hidden = true; });
  if (follow.checked) toBottom();

  function time(ts) { var d = new Date(ts); return isNaN(d) ? "" : d.toTimeString().slice(0, 8); }

  function append(lines) {
    var added = 0, frag = document.createDocumentFragment();
    for (var i = 0; i < lines.length; i++) {
      var line = lines[i];
      if (line.seq <= last) continue;           // already shown
      if (line.seq !== last + 1) { catchUp(); break; }  // a gap: fetch it in order
      var row = document.createElement("div");
      row.className = "line " + line.stream;
      row.setAttribute("data-seq", line.seq);
      var ts = document.createElement("span");
      ts.className = "ts";
      ts.textContent = time(line.ts);
      row.appendChild(ts);
      row.appendChild(document.createTextNode(line.text));
      frag.appendChild(row);
      last = line.seq;
      added++;
    }
    if (!added) return;
    log.appendChild(frag);
    log.setAttribute("data-last-seq", last);
    empty.hidden = true;
    count.textContent = last + " line" + (last === 1 ? "" : "s");
    if (follow.checked) toBottom(); else jump.hidden = false;
  }

  function catchUp() {
    if (fetching) { fetchAgain = true; return; }
    fetching = true;
    fetch(log.getAttribute("data-lines-src") + "?after=" + last, { credentials: "same-origin" })
      .then(function (res) { if (!res.ok) throw new Error("HTTP " + res.status); return res.json(); })
      .then(function (body) { append(body.lines); if (body.more) fetchAgain = true; })
      .catch(function () {})
      .then(function () { fetching = false; if (fetchAgain) { fetchAgain = false; catchUp(); } });
  }

  var FINISHED = ["succeeded", "failed", "dead", "timed_out", "killed", "cancelled"];

  document.addEventListener("live:event", function (e) {
    var msg = e.detail;
    if (msg.kind === "logs") append(msg.lines);
    else if (msg.kind === "status") {
      catchUp();
      // "No output yet — lines appear here…" is not true once the job has ended without output
      if (FINISHED.indexOf(msg.status) !== -1 && last === 0) empty.textContent = "No output.";
    }
  });
  document.addEventListener("live:resync", catchUp);
  document.addEventListener("live:poll", catchUp);
})();
