/* Schedule form: a live preview of the expression in words and the next fire times as the expression or
 * time zone changes (the server words both, in the schedule's zone). */
(function () {
  "use strict";
  var form = document.getElementById("schedule-form");
  if (!form) return;
  var cron = document.getElementById("cron"), tz = document.getElementById("tz");
  var list = document.getElementById("preview"), error = document.getElementById("preview-error");
  var words = document.getElementById("cron-words");
  var timer = null, seq = 0;
  function say(description, zone) {
    if (!words) return;
    words.textContent = "";
    if (!description) return;
    words.appendChild(document.createTextNode(description + " "));
    var where = document.createElement("span");
    where.className = "muted";
    where.textContent = "(" + zone + ")";
    words.appendChild(where);
  }
  function update() {
    var mine = ++seq;
    var zone = tz.value || "UTC";
    var url = form.getAttribute("data-preview") + "?cron=" + encodeURIComponent(cron.value) + "&timezone=" + encodeURIComponent(tz.value);
    fetch(url, { credentials: "same-origin" })
      .then(function (res) { return res.json(); })
      .then(function (body) {
        if (mine !== seq) return;  // an older answer
        list.textContent = "";
        error.hidden = !body.error;
        error.textContent = body.error || "";
        say(body.error ? "" : body.description, zone);
        (body.labels || []).forEach(function (label) {  // in the schedule's zone, as the server words it
          var li = document.createElement("li");
          li.textContent = label;
          list.appendChild(li);
        });
      })
      .catch(function () {});
  }
  function later() { clearTimeout(timer); timer = setTimeout(update, 250); }
  cron.addEventListener("input", later);
  tz.addEventListener("input", later);
  if (cron.value && !list.children.length) update();  // a new schedule's form: its preview at once
})();
