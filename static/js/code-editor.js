/* The code editor of the new-job and deploy pages: CodeMirror on the form's #code, its mode and indent
   following the runtime field, Tab indents, Ctrl+Enter submits the form, Esc leaves for escapeTo. */
(function () {
  "use strict";
  var MODES = { python: "python", node: "javascript" };

  function indentOf(rt) { return rt === "python" ? 4 : 2; }

  window.lambdasiteCodeEditor = function (form, runtime, escapeTo) {
    function submit() { form.requestSubmit ? form.requestSubmit() : form.submit(); }
    var cm = CodeMirror.fromTextArea(form.querySelector("#code"), {
      mode: MODES[runtime.value], lineNumbers: true, indentUnit: indentOf(runtime.value),
      tabSize: 4, indentWithTabs: false, matchBrackets: true, viewportMargin: Infinity,
      extraKeys: {
        Tab: function (ed) { ed.somethingSelected() ? ed.indentSelection("add") : ed.replaceSelection(Array(ed.getOption("indentUnit") + 1).join(" "), "end"); },
        "Shift-Tab": function (ed) { ed.indentSelection("subtract"); },
        "Ctrl-Enter": submit, "Cmd-Enter": submit,
        Esc: function () { escapeTo.focus(); },   // keyboard users leave the editor with Esc
      },
    });
    cm.getWrapperElement().setAttribute("aria-label", "Code editor (Esc leaves it)");
    // registered before the page's own listener, so the mode has changed when the page swaps the code
    runtime.addEventListener("change", function () {
      cm.setOption("mode", MODES[runtime.value]);
      cm.setOption("indentUnit", indentOf(runtime.value));
    });
    window.LambdasiteEditor = cm;
    return cm;
  };
})();
