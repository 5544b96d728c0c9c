// The little the chat page needs beyond htmx: no framework, no build step.
(function () {
  "use strict";

  function composerFields() { return document.getElementById("composer-fields"); }
  function textArea() { return document.getElementById("composer-text"); }

  // The socket replays a run from its first event after a reconnect, so an element may arrive
  // twice. An element whose id is already on the page replaces the old one instead of being
  // appended again: the replay then rebuilds it (empty bubble + every delta) exactly once.
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var fragment = evt.detail.fragment;
    if (!fragment || !fragment.children) return;
    Array.from(fragment.children).forEach(function (child) {
      var existing = child.id && document.getElementById(child.id);
      if (existing && existing !== child) {
        existing.replaceWith(child);
        htmx.process(child);
      }
    });
    if (fragment.childNodes.length === 0) evt.detail.shouldSwap = false;
  });

  // While a run is active (the run controls show it) the composer is disabled.
  var wasActive = null;
  function syncRunState() {
    var active = !!document.querySelector("#run-controls [data-run-active]");
    var fields = composerFields();
    if (!fields || active === wasActive) return;
    var hadFocus = fields.contains(document.activeElement);
    fields.disabled = active;
    document.body.classList.toggle("run-active", active);
    if (!active && (hadFocus || document.activeElement === document.body || wasActive)) {
      var ta = textArea();
      if (ta && !ta.value) ta.focus({ preventScroll: true });
    }
    wasActive = active;
  }

  // Follow the conversation's end unless the reader has scrolled up to read something older.
  var pinned = true;
  function nearBottom() {
    var el = document.documentElement;
    return el.scrollHeight - (window.scrollY + window.innerHeight) < 120;
  }
  window.addEventListener("scroll", function () { pinned = nearBottom(); }, { passive: true });
  function stickToBottom() {
    if (pinned) window.scrollTo(0, document.documentElement.scrollHeight);
  }

  function afterContent() {
    syncRunState();
    var hint = document.getElementById("empty-hint");
    if (hint && document.querySelector("#messages .msg")) hint.remove();
    stickToBottom();
  }
  document.addEventListener("htmx:wsAfterMessage", afterContent);
  document.addEventListener("htmx:afterSettle", afterContent);

  // Older messages are inserted above: keep what the reader was looking at in place.
  var fromBottom = null;
  document.addEventListener("htmx:beforeSwap", function (evt) {
    if (evt.detail.target && evt.detail.target.classList.contains("history-more")) {
      fromBottom = document.documentElement.scrollHeight - window.scrollY;
    }
  });
  document.addEventListener("htmx:afterSwap", function () {
    if (fromBottom !== null) {
      window.scrollTo(0, document.documentElement.scrollHeight - fromBottom);
      fromBottom = null;
    }
  });

  // After a successful send, clear the form; the question is on the page.
  document.addEventListener("htmx:afterRequest", function (evt) {
    var form = evt.detail.elt;
    if (!form || form.id !== "composer" || !evt.detail.successful) return;
    form.reset();
    var name = document.getElementById("composer-file-name");
    if (name) name.textContent = "";
    autosize();
    pinned = true;
    stickToBottom();
  });

  function autosize() {
    var ta = textArea();
    if (!ta) return;
    ta.style.height = "auto";
    ta.style.height = Math.min(ta.scrollHeight, window.innerHeight * 0.4) + "px";
  }

  document.addEventListener("keydown", function (evt) {
    var ta = textArea();
    if (evt.target !== ta || evt.key !== "Enter" || evt.shiftKey || evt.isComposing) return;
    evt.preventDefault();
    if (ta.value.trim() && !composerFields().disabled) ta.form.requestSubmit();
  });
  document.addEventListener("input", function (evt) { if (evt.target === textArea()) autosize(); });

  document.addEventListener("change", function (evt) {
    var input = evt.target;
    if (!input || input.id !== "composer-file") return;
    var name = document.getElementById("composer-file-name");
    var feedback = document.getElementById("composer-feedback");
    var file = input.files && input.files[0];
    var max = parseInt(input.dataset.maxBytes || "0", 10);
    feedback.textContent = "";
    if (file && max && file.size > max) {
      feedback.innerHTML = "";
      var p = document.createElement("p");
      p.className = "form-error";
      p.setAttribute("role", "alert");
      p.textContent = "“" + file.name + "” is too large (limit " + Math.round(max / 1048576) + " MB).";
      feedback.appendChild(p);
      input.value = "";
      file = null;
    }
    if (name) name.textContent = file ? "Attached: " + file.name : "";
  });

  document.addEventListener("DOMContentLoaded", function () {
    syncRunState();
    window.scrollTo(0, document.documentElement.scrollHeight);
    var ta = textArea();
    if (ta && !ta.disabled && window.matchMedia("(min-width: 700px)").matches) ta.focus({ preventScroll: true });
  });
})();
