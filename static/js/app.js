// The little the chat page needs beyond htmx: no framework, no build step, no Markdown parser (the
// server renders replies, also while they stream).
(function () {
  "use strict";

  function byId(id) { return document.getElementById(id); }
  function textArea() { return byId("composer-text"); }
  function composer() { return byId("composer"); }
  function sendButton() { return byId("composer-send"); }

  // --- replays -------------------------------------------------------------------------------
  // The socket replays a run from its first event after a reconnect, so an element may arrive
  // twice. An element whose id is already on the page replaces the old one instead of being
  // appended again: the replay then rebuilds it exactly once.
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var fragment = evt.detail.fragment;
    if (!fragment || !fragment.children || !fragment.children.length) return;
    var replaced = false;
    Array.from(fragment.children).forEach(function (child) {
      var existing = child.id && document.getElementById(child.id);
      if (existing && existing !== child) {
        existing.replaceWith(child);
        htmx.process(child);
        replaced = true;
      }
    });
    if (replaced && fragment.childNodes.length === 0) evt.detail.shouldSwap = false;
  });

  // --- the socket: reconnect soon, and name the runs this page shows ---------------------------
  // A server restart closes sockets with codes the ws extension does not retry on; and its
  // default back-off grows to a minute. Retry every 1-3 s instead, whatever the close code.
  htmx.config.wsReconnectDelay = function (retries) {
    return Math.min(1000 * (retries + 1), 3000) * (0.5 + Math.random() / 2);
  };
  document.addEventListener("htmx:wsClose", function (evt) {
    var code = evt.detail.event && evt.detail.event.code;
    if ([1000, 1006, 1011, 1012, 1013].indexOf(code) >= 0) return;  // done, or the extension retries
    var socket = evt.detail.socketWrapper;
    var elt = evt.target;
    setTimeout(function () { if (document.body.contains(elt)) socket.reconnect(); }, 1000);
  });
  document.addEventListener("htmx:wsOpen", function (evt) {
    // The runs the page shows as going on: after a restart they may have ended while the socket
    // was down, and the server can only say so if it is asked about them.
    var ids = [];
    document.querySelectorAll("[data-run-active]").forEach(function (el) { ids.push(el.dataset.runActive); });
    document.querySelectorAll(".msg.is-streaming[data-run]").forEach(function (el) { ids.push(el.dataset.run); });
    if (ids.length) evt.detail.socketWrapper.send(JSON.stringify({ resume: ids }), evt.target);
  });

  // --- while a reply is being written: the composer stays editable, only sending waits ----------
  var wasActive = null;
  function syncRunState() {
    var active = !!document.querySelector("#run-controls [data-run-active]");
    var send = sendButton();
    if (!send || active === wasActive) return;
    send.disabled = active;
    document.body.classList.toggle("run-active", active);
    wasActive = active;
  }
  function say(text) {
    var box = byId("composer-feedback");
    if (!box) return;
    box.innerHTML = "";
    var p = document.createElement("p");
    p.className = "form-hint";
    p.textContent = text;
    box.appendChild(p);
  }

  // --- scrolling ---------------------------------------------------------------------------------
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
  // Images carry their size, so they take their place before loading; one that loads late still
  // keeps a pinned reader at the end.
  document.addEventListener("load", function (evt) {
    if (evt.target && evt.target.tagName === "IMG" && evt.target.closest("#messages")) stickToBottom();
  }, true);

  function afterContent() {
    syncRunState();
    var hint = byId("empty-hint");
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

  // --- drafts: nothing typed is lost (an expired session, a reload, switching conversations) ----
  function draftKey() { var f = composer(); return f && f.dataset.draftKey; }
  function saveDraft() {
    var key = draftKey(), ta = textArea();
    if (!key || !ta) return;
    try {
      if (ta.value) localStorage.setItem(key, ta.value); else localStorage.removeItem(key);
    } catch (e) { /* storage full or disabled: the text is still in the box */ }
  }
  function restoreDraft() {
    var key = draftKey(), ta = textArea();
    if (!key || !ta || ta.value) return;
    try {
      var saved = localStorage.getItem(key);
      if (saved) { ta.value = saved; autosize(); }
    } catch (e) { /* ignore */ }
  }

  // After a successful send, clear the form; the question is on the page.
  document.addEventListener("htmx:afterRequest", function (evt) {
    var form = evt.detail.elt;
    if (!form || form.id !== "composer" || !evt.detail.successful) return;
    form.reset();
    saveDraft();
    var name = byId("composer-file-name");
    if (name) name.textContent = "";
    autosize();
    pinned = true;
    stickToBottom();
  });
  document.body.addEventListener("chat:session-ended", saveDraft);
  document.body.addEventListener("chat:page-stale", saveDraft);

  function autosize() {
    var ta = textArea();
    if (!ta) return;
    ta.style.height = "auto";
    ta.style.height = Math.min(ta.scrollHeight, window.innerHeight * 0.4) + "px";
  }

  // --- keyboard ------------------------------------------------------------------------------------
  document.addEventListener("keydown", function (evt) {
    var ta = textArea();
    if (evt.key === "Escape") { closeInline(evt.target); closeDrawer(); return; }
    if (evt.target !== ta || evt.key !== "Enter" || evt.shiftKey || evt.isComposing) return;
    evt.preventDefault();
    if (!ta.value.trim()) return;
    if (sendButton() && sendButton().disabled) {
      say("The assistant is still replying. Your message stays here; send it when the reply is done, or press Stop.");
      return;
    }
    ta.form.requestSubmit();
  });
  document.addEventListener("input", function (evt) {
    if (evt.target === textArea()) { autosize(); saveDraft(); }
  });

  // --- copying: a reply's Markdown source, a code block's code -------------------------------------
  function copyText(text, button) {
    function done() {
      var old = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = old; }, 1500);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { legacyCopy(text) && done(); });
    } else if (legacyCopy(text)) {
      done();
    }
  }
  function legacyCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    area.remove();
    return ok;
  }

  // --- clicks ----------------------------------------------------------------------------------------
  document.addEventListener("click", function (evt) {
    // A tap beside the open drawer closes it.
    if (document.body.classList.contains("drawer-open") && !evt.target.closest("#sidebar, #menu-toggle")) {
      closeDrawer();
    }
    var t = evt.target.closest("button, a");
    if (!t) return;
    if (t.classList.contains("act-copy")) {
      var src = byId(t.dataset.copy);
      if (src) copyText(src.content.textContent, t);
    } else if (t.classList.contains("code-copy")) {
      var code = t.closest(".code-block").querySelector("pre code");
      if (code) copyText(code.textContent, t);
    } else if (t.classList.contains("act-edit")) {
      openEdit(t.closest(".msg"), t.dataset.message);
    } else if (t.classList.contains("edit-cancel")) {
      var form = t.closest(".edit-form");
      var owner = form.closest(".msg");
      form.remove();
      if (owner) { owner.classList.remove("is-editing"); var b = owner.querySelector(".act-edit"); if (b) b.focus(); }
    } else if (t.classList.contains("conv-rename")) {
      openInline(t.closest(".conv"), ".conv-rename-form", "input[name=title]");
    } else if (t.classList.contains("conv-delete")) {
      openInline(t.closest(".conv"), ".conv-confirm", ".conv-confirm-delete");
    } else if (t.classList.contains("conv-cancel")) {
      closeInline(t);
    } else if (t.id === "menu-toggle") {
      var open = !document.body.classList.contains("drawer-open");
      document.body.classList.toggle("drawer-open", open);
      t.setAttribute("aria-expanded", open ? "true" : "false");
      if (open) { var q = byId("conv-q"); if (q) q.focus(); }
    } else if (t.classList.contains("conv-link")) {
      closeDrawer();
    } else if (t.hasAttribute("data-keep-draft")) {
      saveDraft();
    }
  });

  function openEdit(msg, messageId) {
    var tpl = byId("edit-template");
    if (!msg || !tpl || msg.querySelector(".edit-form")) return;
    var form = tpl.content.firstElementChild.cloneNode(true);
    form.querySelector("[name=message]").value = messageId;
    var area = form.querySelector("textarea");
    area.id = "edit-" + messageId;
    form.querySelector("label").setAttribute("for", area.id);
    area.value = msg.querySelector(".msg-body").textContent;
    msg.appendChild(form);
    msg.classList.add("is-editing");
    htmx.process(form);
    area.focus();
  }

  // Inline forms in the conversation list (rename, confirm delete) instead of browser dialogs.
  function openInline(item, formSel, focusSel) {
    if (!item) return;
    item.querySelectorAll(".conv-rename-form, .conv-confirm").forEach(function (el) { el.hidden = true; });
    var panel = item.querySelector(formSel);
    panel.hidden = false;
    item.classList.add("is-open");
    var f = panel.querySelector(focusSel);
    if (f) { f.focus(); if (f.select) f.select(); }
  }
  function closeInline(from) {
    var item = from && from.closest && from.closest(".conv");
    if (!item) return;
    item.querySelectorAll(".conv-rename-form, .conv-confirm").forEach(function (el) { el.hidden = true; });
    item.classList.remove("is-open");
    var link = item.querySelector(".conv-link");
    if (link) link.focus();
  }
  function closeDrawer() {
    if (!document.body.classList.contains("drawer-open")) return;
    document.body.classList.remove("drawer-open");
    var toggle = byId("menu-toggle");
    if (toggle) toggle.setAttribute("aria-expanded", "false");
  }

  // --- switching conversations ---------------------------------------------------------------------
  function markCurrent() {
    var chat = byId("chat");
    if (!chat) return;
    var id = chat.dataset.thread;
    document.querySelectorAll("#conversation-list .conv").forEach(function (li) {
      if (li.id === "conv-" + id) li.setAttribute("aria-current", "page"); else li.removeAttribute("aria-current");
    });
    var current = byId("conv-current");
    if (current) current.value = id;
  }
  document.addEventListener("htmx:beforeSwap", function (evt) {
    if (evt.detail.target && evt.detail.target.id === "chat") saveDraft();
  });
  document.addEventListener("htmx:afterSwap", function (evt) {
    if (evt.detail.target && evt.detail.target.id === "chat" || evt.detail.elt && evt.detail.elt.id === "chat") {
      wasActive = null;
      pinned = true;
      markCurrent();
      restoreDraft();
      syncRunState();
      window.scrollTo(0, document.documentElement.scrollHeight);
      var ta = textArea();
      if (ta && window.matchMedia("(min-width: 700px)").matches) ta.focus({ preventScroll: true });
    }
    if (evt.detail.target && evt.detail.target.id === "conversation-list") markCurrent();
  });

  // --- attachments -------------------------------------------------------------------------------------
  document.addEventListener("change", function (evt) {
    var input = evt.target;
    if (!input || input.id !== "composer-file") return;
    var name = byId("composer-file-name");
    var feedback = byId("composer-feedback");
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
    restoreDraft();
    window.scrollTo(0, document.documentElement.scrollHeight);
    var ta = textArea();
    if (ta && window.matchMedia("(min-width: 700px)").matches) ta.focus({ preventScroll: true });
  });
})();
