/* flask-trakkr-webhooks portal: the only script (no inline scripts; the CSP allows 'self' only).
   The form shows the provider detected from the URL as it is typed, and a live
   preview of the body a sample event would get. Every page works without it. */
(function () {
  "use strict";
  var form = document.getElementById("webhook-form");
  if (!form) { return; }
  var timers = {};
  function later(name, fn) { clearTimeout(timers[name]); timers[name] = setTimeout(fn, 300); }

  var url = document.getElementById("url");
  var detected = document.getElementById("detected");
  function detect() {
    if (!url.value) { detected.textContent = ""; return; }
    fetch(form.dataset.detectUrl + "?url=" + encodeURIComponent(url.value), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) { detected.textContent = data.provider ? "Detected format: " + data.provider : ""; })
      .catch(function () { detected.textContent = ""; });
  }
  url.addEventListener("input", function () { later("detect", detect); });
  detect();

  var previewUrl = form.dataset.previewUrl;
  if (!previewUrl) { return; }
  var body = document.getElementById("preview-body");
  var error = document.getElementById("preview-error");
  var event = document.getElementById("preview-event");
  function preview() {
    var data = new FormData();
    data.append("csrf_token", form.elements.csrf_token.value);
    data.append("template", form.elements.template.value);
    data.append("provider", form.elements.provider.value);
    data.append("url", url.value);
    data.append("event", event.value);
    fetch(previewUrl, { method: "POST", body: data, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (answer) {
        if (answer.error) { error.textContent = answer.error; return; }
        error.textContent = "";
        body.textContent = answer.body;
      })
      .catch(function () { error.textContent = "The preview could not be loaded."; });
  }
  ["template", "provider", "url"].forEach(function (name) {
    form.elements[name].addEventListener("input", function () { later("preview", preview); });
  });
  event.addEventListener("change", preview);
  preview();
})();
