/* New job: CodeMirror editor, runtime templates, the examples menu, args validated before submit. */
(function () {
  "use strict";
  var form = document.getElementById("job-form");
  var runtime = document.getElementById("runtime");
  var example = document.getElementById("example");
  var args = document.getElementById("args");
  var argsError = document.getElementById("args-error");
  var examples = JSON.parse(document.getElementById("examples-data").textContent);
  var templates = JSON.parse(document.getElementById("templates-data").textContent);
  var cm = window.lambdasiteCodeEditor(form, runtime, args);

  // code that came from a template or an example may be swapped freely; edited code is asked about
  function known(code) {
    if (code === templates.python || code === templates.node) return true;
    return examples.some(function (ex) { return code === ex.python || code === ex.node; });
  }
  function exampleOf(code) {
    for (var i = 0; i < examples.length; i++) if (code === examples[i].python || code === examples[i].node) return examples[i];
    return null;
  }

  runtime.addEventListener("change", function () {
    var rt = runtime.value, code = cm.getValue();
    var ex = exampleOf(code);
    if (known(code) || window.confirm("Replace your code with the " + rt + " template?")) {
      cm.setValue(ex ? ex[rt] : templates[rt]);
    }
  });

  example.addEventListener("change", function () {
    var ex = examples.filter(function (e) { return e.key === example.value; })[0];
    if (!ex) return;
    if (known(cm.getValue()) || window.confirm("Replace your code with the “" + ex.title + "” example?")) {
      cm.setValue(ex[runtime.value]);
      args.value = ex.args;
      checkArgs();
    }
    example.value = "";
    cm.focus();
  });

  function checkArgs() {
    var message = "";
    var text = args.value.trim();
    if (text) {
      try {
        var value = JSON.parse(text);
        if (!Array.isArray(value)) message = "Arguments must be a JSON array, e.g. [2, 3] (a single object is [{\"a\": 1}]).";
      } catch (err) {
        message = "Not valid JSON: " + err.message;
      }
    }
    argsError.textContent = message;
    argsError.hidden = !message;
    args.setAttribute("aria-invalid", message ? "true" : "false");
    return !message;
  }
  args.addEventListener("input", checkArgs);

  form.addEventListener("submit", function (e) {
    cm.save();
    var ok = checkArgs();
    var numbers = form.querySelectorAll("input[type=number]");
    for (var i = 0; i < numbers.length && ok; i++) {
      if (!numbers[i].checkValidity()) { numbers[i].reportValidity(); ok = false; }
    }
    if (!cm.getValue().trim()) { ok = false; cm.focus(); }
    if (!ok) { e.preventDefault(); if (!argsError.hidden) args.focus(); return; }
    document.getElementById("run").disabled = true;
  });
})();
