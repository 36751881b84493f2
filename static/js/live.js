/* Lambdasite dashboard: local times, small form helpers, and the live connection.
 *
 * A page opts in with data-live-ws on <main> (the websocket path) and one or more
 * regions with data-live-src (a URL returning that region's HTML). Events carry a
 * sequence number per group; on a gap, a resync or a (re)connect every region is
 * re-fetched, so the page converges to the database. While the socket is down the
 * page polls the same URLs every few seconds and keeps trying to reconnect.
 *
 * Which events refresh a region: data-live-on lists their kinds ("status" if absent),
 * data-live-filter narrows them to events with a field ("function") or a field's value
 * ("function=resize"). data-live-pick: the URL answers a whole page, and the region
 * takes the element with its own id from it (so a page's table is a region without
 * moving it into a partial). data-live-announce names a polite live region that says
 * "New job: …" (a row's data-announce) when rows with a new data-job appear.
 * <details> left open inside a region stay open across refreshes.
 */
(function () {
  "use strict";

  var LABELS = { timed_out: "timed out" };
  var POLL_MS = 3000;

  // -- times: "2026-11-22 21:03:04 (3 min ago)" in the reader's zone -----------------
  var rtf = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;
  function relative(date) {
    var s = (date.getTime() - Date.now()) / 1000, a = Math.abs(s);
    if (!rtf) return "";
    if (a < 45) return rtf.format(Math.round(s), "second");
    if (a < 2700) return rtf.format(Math.round(s / 60), "minute");
    if (a < 79200) return rtf.format(Math.round(s / 3600), "hour");
    return rtf.format(Math.round(s / 86400), "day");
  }
  function renderTimes(root) {
    (root || document).querySelectorAll("time[data-relative]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      el.textContent = d.toLocaleString() + " (" + relative(d) + ")";
      el.title = d.toISOString();
    });
    (root || document).querySelectorAll("time[data-clock]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      el.textContent = d.toLocaleTimeString();
      el.title = d.toLocaleString() + " (" + relative(d) + ")";
    });
  }
  renderTimes(document);
  setInterval(function () { renderTimes(document); }, 30000);

  // -- small helpers: auto-submitting selects, confirmations, copy buttons, select-all
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.matches("[data-autosubmit]") && t.form) t.form.requestSubmit ? t.form.requestSubmit() : t.form.submit();
    if (t.matches("[data-check-all]")) {
      t.closest("form").querySelectorAll("input[name=job]").forEach(function (box) { box.checked = t.checked; });
    }
  });
  document.addEventListener("click", function (e) {
    var t = e.target.closest("[data-confirm],[data-copy]");
    if (!t) return;
    if (t.hasAttribute("data-confirm") && !window.confirm(t.getAttribute("data-confirm"))) e.preventDefault();
    if (t.hasAttribute("data-copy")) {
      var field = document.querySelector(t.getAttribute("data-copy"));
      field.select();
      var done = function () { t.textContent = "Copied"; setTimeout(function () { t.textContent = "Copy"; }, 2000); };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); });
      else { document.execCommand("copy"); done(); }
    }
  });

  // -- live ----------------------------------------------------------------------------
  var main = document.getElementById("main");
  var wsPath = main && main.getAttribute("data-live-ws");
  var state = { mode: "off", lastSeq: null, events: 0, refreshes: 0, polls: 0, gaps: 0 };
  var api = { state: state, renderTimes: renderTimes, refreshAll: refreshAll };
  window.Lambdasite = api;
  if (!wsPath) return;

  var indicator = document.getElementById("live-status");
  function show(mode) {
    state.mode = mode;
    document.documentElement.setAttribute("data-live", mode);
    if (!indicator) return;
    // only while it has something to say: an empty bar while the socket connects would push the
    // page down for a moment on every load
    indicator.textContent = mode === "polling" ? "Live updates interrupted: refreshing every few seconds while reconnecting…" : "";
    indicator.hidden = !indicator.textContent;
  }

  function emit(name, detail) { document.dispatchEvent(new CustomEvent(name, { detail: detail })); }

  var regions = Array.prototype.slice.call(document.querySelectorAll("[data-live-src]")).map(function (el) {
    return {
      el: el, timer: null, busy: false, again: false,
      delay: parseInt(el.getAttribute("data-live-debounce") || "500", 10),
      kinds: (el.getAttribute("data-live-on") || "status").split(/\s+/),
      filter: el.getAttribute("data-live-filter"),
      rows: rowIds(el)
    };
  });

  function rowIds(el) {
    var ids = {};
    el.querySelectorAll("[data-job]").forEach(function (row) { ids[row.getAttribute("data-job")] = true; });
    return ids;
  }

  // does this event concern the region? (a resync, a gap and a reconnect refresh every region)
  function concerns(r, msg) {
    if (r.kinds.indexOf(msg.kind) === -1) return false;
    if (!r.filter) return true;
    var eq = r.filter.indexOf("="), key = eq === -1 ? r.filter : r.filter.slice(0, eq);
    var value = msg[key];
    if (value === undefined || value === null || value === "") return false;
    return eq === -1 || String(value) === r.filter.slice(eq + 1);
  }

  function pick(r, html) {
    if (!r.el.hasAttribute("data-live-pick")) return html;
    var found = new DOMParser().parseFromString(html, "text/html").getElementById(r.el.id);
    return found ? found.innerHTML : null;
  }

  function announceNew(r) {
    var target = document.getElementById(r.el.getAttribute("data-live-announce") || "");
    var before = r.rows, fresh = [];
    r.rows = rowIds(r.el);
    if (!target) return;
    r.el.querySelectorAll("[data-job]").forEach(function (row) {
      if (!before[row.getAttribute("data-job")]) fresh.push(row.getAttribute("data-announce") || "New job");
    });
    if (fresh.length === 1) target.textContent = fresh[0];
    else if (fresh.length > 1) target.textContent = fresh.length + " new jobs";
  }

  function fetchRegion(r) {
    if (r.busy) { r.again = true; return; }
    r.busy = true;
    fetch(r.el.getAttribute("data-live-src"), { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (res) {
        if (res.status === 404) { r.el.innerHTML = '<div class="empty"><p>This no longer exists (deleted).</p></div>'; return null; }
        if (res.redirected || !res.ok) throw new Error("HTTP " + res.status);
        return res.text();
      })
      .then(function (html) {
        if (html === null || html === undefined) return;
        html = pick(r, html);
        if (html === null) return;
        var open = Array.prototype.map.call(r.el.querySelectorAll("details[open][id]"), function (d) { return d.id; });
        if (r.el.innerHTML !== html) r.el.innerHTML = html;
        open.forEach(function (id) { var d = document.getElementById(id); if (d && r.el.contains(d)) d.open = true; });
        state.refreshes++;
        renderTimes(r.el);
        announceNew(r);
        emit("live:refreshed", { region: r.el.id });
      })
      .catch(function () { /* next event or poll tries again */ })
      .then(function () {
        r.busy = false;
        if (r.again) { r.again = false; schedule(r, 0); }
      });
  }
  function schedule(r, delay) {
    if (r.timer) return;
    r.timer = setTimeout(function () { r.timer = null; fetchRegion(r); }, delay === undefined ? r.delay : delay);
  }
  function refreshAll(now) { regions.forEach(function (r) { schedule(r, now ? 0 : undefined); }); }
  function refreshFor(msg) { regions.forEach(function (r) { if (concerns(r, msg)) schedule(r); }); }

  function setBadges(id, status) {
    document.querySelectorAll('[data-job-status="' + id + '"]').forEach(function (el) {
      el.className = "badge s-" + status;
      el.textContent = LABELS[status] || status;
    });
  }

  var socket = null, backoff = 1000, pollTimer = null;
  function startPolling() {
    if (pollTimer) return;
    show("polling");
    pollTimer = setInterval(function () { state.polls++; refreshAll(true); emit("live:poll"); }, POLL_MS);
  }
  function stopPolling() { clearInterval(pollTimer); pollTimer = null; }

  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + wsPath;
    try { socket = new WebSocket(url); } catch (err) { startPolling(); setTimeout(connect, backoff); return; }
    socket.onmessage = function (e) {
      var msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      if (msg.kind === "hello") {
        state.lastSeq = msg.seq;
        backoff = 1000;
        stopPolling();
        show("live");
        refreshAll(true);   // whatever changed before we subscribed
        emit("live:resync");
        return;
      }
      if (msg.kind === "pong" || typeof msg.seq !== "number") return;
      state.events++;
      var gap = state.lastSeq !== null && msg.seq !== state.lastSeq + 1;
      state.lastSeq = Math.max(state.lastSeq || 0, msg.seq);
      if (gap || msg.kind === "resync") {
        state.gaps++;
        refreshAll(true);
        emit("live:resync");
        if (msg.kind === "resync") return;
      }
      if (msg.kind === "status") setBadges(msg.job, msg.status);
      refreshFor(msg);
      emit("live:event", msg);
    };
    socket.onclose = function () {
      socket = null;
      startPolling();
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 30000);
    };
  }
  show("connecting");
  connect();
  // a socket that never opens still gets the page polling after a moment
  setTimeout(function () { if (state.mode === "connecting") startPolling(); }, 4000);
  // keep intermediaries from closing an idle socket
  setInterval(function () { if (socket && socket.readyState === 1) socket.send('{"kind":"ping"}'); }, 25000);
})();
