/* Deploy a function: CodeMirror editor, the dependencies box of the chosen runtime, Ctrl+Enter deploys. */
(function () {
  "use strict";
  var form = document.getElementById("deploy-form");
  var runtime = document.getElementById("runtime");
  var templates = JSON.parse(document.getElementById("templates-data").textContent);
  var MODES = { python: "python", node: "javascript" };

  function submit() { form.requestSubmit ? form.requestSubmit() : form.submit(); }
  var cm = CodeMirror.fromTextArea(document.getElementById("code"), {
    mode: MODES[runtime.value], lineNumbers: true, indentUnit: runtime.value === "python" ? 4 : 2,
    tabSize: 4, indentWithTabs: false, matchBrackets: true, viewportMargin: Infinity,
    extraKeys: {
      Tab: function (ed) { ed.somethingSelected() ? ed.indentSelection("add") : ed.replaceSelection(Array(ed.getOption("indentUnit") + 1).join(" "), "end"); },
      "Shift-Tab": function (ed) { ed.indentSelection("subtract"); },
      "Ctrl-Enter": submit, "Cmd-Enter": submit,
      Esc: function () { document.getElementById("description").focus(); },
    },
  });
  cm.getWrapperElement().setAttribute("aria-label", "Code editor (Esc leaves it)");
  window.LambdasiteEditor = cm;

  function showDeps() {
    document.getElementById("deps-python").hidden = runtime.value !== "python";
    document.getElementById("deps-node").hidden = runtime.value !== "node";
  }
  if (runtime.tagName === "SELECT") {
    runtime.addEventListener("change", function () {
      var rt = runtime.value, code = cm.getValue();
      cm.setOption("mode", MODES[rt]);
      cm.setOption("indentUnit", rt === "python" ? 4 : 2);
      if (code === templates.python || code === templates.node || window.confirm("Replace your code with the " + rt + " template?")) {
        cm.setValue(templates[rt]);
      }
      showDeps();
    });
  }
  form.addEventListener("submit", function (e) {
    cm.save();
    if (!cm.getValue().trim()) { e.preventDefault(); cm.focus(); return; }
    var deps = document.getElementById("dependencies");
    if (runtime.value === "node" && deps.value.trim()) {
      try { JSON.parse(deps.value); } catch (err) { e.preventDefault(); window.alert("Dependencies: not valid JSON: " + err.message); deps.focus(); return; }
    }
    document.getElementById("run").disabled = true;
  });
})();
