// closedloop console: keyboard shortcuts, and nothing a page needs to work.
//
// Any element with a `data-key` attribute is activated when that key is pressed outside a
// text field: a link or button is clicked, a radio or checkbox is toggled, a text field is
// focused. Keys are compared with KeyboardEvent.key ("g", "3", "ArrowRight", "?").
// Escape leaves a text field; Ctrl+Enter (or Cmd+Enter) in a text field submits its form
// (with the button its `data-submit` attribute names, if any).
// `data-confirm` on a button asks before submitting.
"use strict";

(function () {
  function editing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select") return true;
    if (tag !== "input") return target.isContentEditable === true;
    var type = (target.getAttribute("type") || "text").toLowerCase();
    return ["text", "search", "password", "email", "url", "number", "date", "datetime-local"].indexOf(type) >= 0;
  }

  function activate(element) {
    var tag = element.tagName.toLowerCase();
    var type = (element.getAttribute("type") || "").toLowerCase();
    if (tag === "textarea" || (tag === "input" && type !== "radio" && type !== "checkbox" && type !== "submit")) {
      element.focus();
      if (element.select) element.select();
      return;
    }
    if (tag === "input" && (type === "radio" || type === "checkbox")) {
      element.checked = type === "radio" ? true : !element.checked;
      element.dispatchEvent(new Event("change", { bubbles: true }));
      return;
    }
    element.click();
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey) return;
    var target = event.target;
    if (editing(target)) {
      if (event.key === "Escape") {
        target.blur();
        event.preventDefault();
      } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target.form) {
        event.preventDefault();
        // `data-submit="ID"` names the button the form is submitted with (its name and value
        // are sent, as when it is clicked).
        var submitter = document.getElementById(target.getAttribute("data-submit") || "");
        if (submitter && target.form.requestSubmit) target.form.requestSubmit(submitter);
        else if (submitter) submitter.click();
        else if (target.form.requestSubmit) target.form.requestSubmit();
        else target.form.submit();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey) return;
    var key = event.key;
    var candidates = document.querySelectorAll("[data-key]");
    for (var i = 0; i < candidates.length; i++) {
      var keys = candidates[i].getAttribute("data-key").split(" ");
      if (keys.indexOf(key) >= 0 && !candidates[i].disabled) {
        event.preventDefault();
        activate(candidates[i]);
        return;
      }
    }
  });

  document.addEventListener("submit", function (event) {
    var submitter = event.submitter;
    var message = submitter && submitter.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });
})();
