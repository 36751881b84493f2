/* Deploy a function: CodeMirror editor, the dependencies box of the chosen runtime, Ctrl+Enter deploys. */
(function () {
  "use strict";
  var form = document.getElementById("deploy-form");
  var runtime = document.getElementById("runtime");
  var templates = JSON.parse(document.getElementById("templates-data").textContent);
  var cm = window.lambdasiteCodeEditor(form, runtime, document.getElementById("description"));

  function showDeps() {
    document.getElementById("deps-python").hidden = runtime.value !== "python";
    document.getElementById("deps-node").hidden = runtime.value !== "node";
  }
  if (runtime.tagName === "SELECT") {
    runtime.addEventListener("change", function () {
      var rt = runtime.value, code = cm.getValue();
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
