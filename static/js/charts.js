/* Charts: the server writes their times in UTC (saying so) with the instant in data-time; here they
 * are said in the reader's zone, like every other time on the page, again after a live refresh. */
(function () {
  "use strict";
  var clock = window.Intl ? new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }) : null;
  function localise(root) {
    if (!clock) return;
    (root || document).querySelectorAll("svg.chart [data-time]").forEach(function (el) {
      var when = new Date(el.getAttribute("data-time"));
      if (isNaN(when)) return;
      el.textContent = (el.getAttribute("data-prefix") || "") + clock.format(when) + (el.getAttribute("data-suffix") || "");
      el.setAttribute("data-local", "1");
    });
  }
  localise(document);
  document.addEventListener("live:refreshed", function () { localise(document); });
  window.LambdasiteCharts = { localise: localise };
})();
