/* The reader's theme and the header's menu, on every page.
 *
 * Loaded synchronously in <head> so that the chosen theme is on <html> before the first paint (no
 * flash of the other palette): "light" or "dark" is kept in localStorage and set as
 * html[data-theme]; without a choice the stylesheet follows prefers-color-scheme. html.js tells the
 * stylesheet that the Menu button works: without JavaScript the phone menu simply stays open.
 */
(function () {
  "use strict";
  var KEY = "lambdasite-theme";
  var ORDER = ["system", "light", "dark"];
  var root = document.documentElement;

  function saved() {
    try { return localStorage.getItem(KEY) || "system"; } catch (e) { return "system"; }
  }
  function apply(theme) {
    if (theme === "light" || theme === "dark") root.setAttribute("data-theme", theme);
    else root.removeAttribute("data-theme");
  }
  apply(saved());
  root.classList.add("js");

  var ICONS = { system: "\u25D0", light: "\u2600", dark: "\u263E" };  // ◐ ☀ ☾

  function show(button, theme) {
    button.querySelector(".theme-icon").textContent = ICONS[theme];
    button.querySelector(".theme-name").textContent = "Theme: " + theme;
    button.title = "Theme: " + theme + " (change: system, light, dark)";
  }

  function themeToggle(button) {
    button.hidden = false;
    show(button, saved());
    button.addEventListener("click", function () {
      var next = ORDER[(ORDER.indexOf(saved()) + 1) % ORDER.length];
      try {
        if (next === "system") localStorage.removeItem(KEY); else localStorage.setItem(KEY, next);
      } catch (e) { /* storage refused: the choice lasts for this page */ }
      apply(next);
      show(button, next);
    });
    window.addEventListener("storage", function (e) {  // chosen in another tab
      if (e.key === KEY) { apply(e.newValue || "system"); show(button, e.newValue || "system"); }
    });
  }

  function menuToggle(button) {
    var header = button.closest(".top");
    function set(open) {
      header.classList.toggle("open", open);
      button.setAttribute("aria-expanded", String(open));
    }
    button.hidden = false;
    button.addEventListener("click", function () { set(!header.classList.contains("open")); });
    header.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && header.classList.contains("open")) { set(false); button.focus(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var theme = document.querySelector("[data-theme-toggle]");
    var menu = document.querySelector("[data-menu-toggle]");
    if (theme) themeToggle(theme);
    if (menu) menuToggle(menu);
  });
})();
