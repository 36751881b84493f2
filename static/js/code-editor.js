/* The code editor of the new-job and deploy pages: CodeMirror on the form's #code, its mode and indent
   following the runtime field, Tab indents, Ctrl+Enter submits the form, Esc leaves for escapeTo. */
(function () {
  "use strict";
  var MODES = { python: "python", node: "javascript" };

  function indentOf(rt) { return rt === "python" ? 4 : 2; }

  // the visible words of the field's <label> (its first text: the hint in <small> is left out)
  function fieldName(textarea) {
    var label = textarea.labels && textarea.labels[0];
    var first = label && label.firstChild;
    var text = first && first.nodeType === 3 ? first.textContent : label ? label.textContent : "";
    return text.replace(/\s+/g, " ").trim() || "Code";
  }

  window.lambdasiteCodeEditor = function (form, runtime, escapeTo) {
    function submit() { form.requestSubmit ? form.requestSubmit() : form.submit(); }
    var textarea = form.querySelector("#code");
    var cm = CodeMirror.fromTextArea(textarea, {
      mode: MODES[runtime.value], lineNumbers: true, indentUnit: indentOf(runtime.value),
      tabSize: 4, indentWithTabs: false, matchBrackets: true, viewportMargin: Infinity,
      extraKeys: {
        Tab: function (ed) { ed.somethingSelected() ? ed.indentSelection("add") : ed.replaceSelection(Array(ed.getOption("indentUnit") + 1).join(" "), "end"); },
        "Shift-Tab": function (ed) { ed.indentSelection("subtract"); },
        "Ctrl-Enter": submit, "Cmd-Enter": submit,
        Esc: function () { escapeTo.focus(); },   // keyboard users leave the editor with Esc
      },
    });
    // the textarea that has focus while editing is CodeMirror's own: it takes the form field's name
    cm.getInputField().setAttribute("aria-label", fieldName(textarea) + " (code editor: Tab indents, Esc leaves it)");
    // registered before the page's own listener, so the mode has changed when the page swaps the code
    runtime.addEventListener("change", function () {
      cm.setOption("mode", MODES[runtime.value]);
      cm.setOption("indentUnit", indentOf(runtime.value));
    });
    window.LambdasiteEditor = cm;
    return cm;
  };
})();
