/* Schedule form: a live preview of the next fire times as the expression or time zone changes. */
(function () {
  "use strict";
  var form = document.getElementById("schedule-form");
  if (!form) return;
  var cron = document.getElementById("cron"), tz = document.getElementById("tz");
  var list = document.getElementById("preview"), error = document.getElementById("preview-error");
  var timer = null, seq = 0;
  function update() {
    var mine = ++seq;
    var url = form.getAttribute("data-preview") + "?cron=" + encodeURIComponent(cron.value) + "&timezone=" + encodeURIComponent(tz.value);
    fetch(url, { credentials: "same-origin" })
      .then(function (res) { return res.json(); })
      .then(function (body) {
        if (mine !== seq) return;  // an older answer
        list.textContent = "";
        error.hidden = !body.error;
        error.textContent = body.error || "";
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
