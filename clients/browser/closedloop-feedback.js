/*
 * closedloop-feedback.js: thumbs up / thumbs down, with an optional comment, for one answer,
 * posted to a closedloop receiver's feedback API (POST /v1/feedback). No dependencies, no
 * build step: include it with a <script> tag.
 *
 *   <div data-closedloop-feedback
 *        data-endpoint="https://feedback.example.com"
 *        data-feedback-token="AQ…"
 *        data-session-id="…"
 *        data-comment></div>
 *   <script src="closedloop-feedback.js" defer></script>
 *
 * - data-endpoint: the receiver's HTTP base URL (or the full /v1/feedback URL).
 * - data-feedback-token: the answer's feedback token, minted by the application for the
 *   answer's span. It names the span, so the trace and span ids are read from it; or give the
 *   whole reference the application received as JSON in data-response
 *   ({"trace_id", "span_id", "feedback_token"}).
 * - data-session-id (optional): the session, sent as session_id.
 * - data-comment (optional): after a thumbs down, offer a comment box; the feedback is sent
 *   when the comment is sent or skipped, or when the page is hidden first. Without it a thumbs
 *   down is sent at once. The receiver keeps comments only when it is configured to.
 * - data-transport="beacon" (optional): always send with navigator.sendBeacon.
 *
 * The body is JSON sent as text/plain, so a cross-origin request needs no CORS preflight. It
 * goes with fetch(..., {keepalive: true}), which outlives the page; when fetch is missing or
 * fails on the network (a cross-origin answer the page may not read included), with
 * navigator.sendBeacon. Each piece of feedback carries an idempotency id, so one sent twice is
 * counted once. After sending, the element fires a "closedloop-feedback" event (detail:
 * {signal, transport}); on failure "closedloop-feedback-error" (detail: {signal, error}).
 *
 * window.closedloopFeedback.mount(element, options) mounts one element from script, with
 * options {endpoint, feedbackToken, traceId, spanId, sessionId, comment, transport};
 * window.closedloopFeedback.send(options, signal, extra) sends without any UI.
 */
(function () {
  "use strict";

  var FEEDBACK_PATH = "/v1/feedback";
  var CONTENT_TYPE = "text/plain;charset=UTF-8";
  var MAX_COMMENT_CHARS = 2000;
  var STYLE_ID = "closedloop-feedback-style";
  var CSS =
    ".closedloop-feedback{display:inline-flex;flex-wrap:wrap;align-items:center;gap:.4em}" +
    ".closedloop-feedback button{font:inherit;cursor:pointer;border:1px solid #bbb;" +
    "border-radius:4px;background:transparent;padding:.1em .45em}" +
    ".closedloop-feedback button[aria-pressed=true]{border-color:#333;background:#eee}" +
    ".closedloop-feedback button:disabled{cursor:default;opacity:.6}" +
    ".closedloop-feedback form{display:flex;gap:.4em;align-items:flex-start;flex-basis:100%}" +
    ".closedloop-feedback textarea{font:inherit;flex:1;min-height:3em}" +
    // The rules above would otherwise override the hidden attribute's display:none.
    ".closedloop-feedback [hidden]{display:none!important}";

  /** The feedback URL for an endpoint: a base URL, or the full /v1/feedback URL. */
  function feedbackUrl(endpoint) {
    var base = String(endpoint || "").replace(/\/+$/, "");
    if (!base) {
      throw new Error("closedloop-feedback: no endpoint");
    }
    return base.slice(-FEEDBACK_PATH.length) === FEEDBACK_PATH ? base : base + FEEDBACK_PATH;
  }

  function hex(bytes, from, to) {
    var out = "";
    for (var i = from; i < to; i++) {
      out += (bytes.charCodeAt(i) & 0xff).toString(16).padStart(2, "0");
    }
    return out;
  }

  /** The trace and span ids a feedback token was minted for (its bytes 1..17 and 17..25). */
  function idsFromToken(token) {
    var b64 = token.trim().replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var bytes;
    try {
      bytes = atob(b64);
    } catch (e) {
      throw new Error("closedloop-feedback: the feedback token is not base64url");
    }
    if (bytes.length < 25) {
      throw new Error("closedloop-feedback: the feedback token is too short");
    }
    return { traceId: hex(bytes, 1, 17), spanId: hex(bytes, 17, 25) };
  }

  function idempotencyId() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    var out = "fb_";
    for (var i = 0; i < bytes.length; i++) {
      out += bytes[i].toString(16).padStart(2, "0");
    }
    return out;
  }

  /** Options from an element's data attributes. */
  function optionsFrom(element) {
    var data = element.dataset;
    var options = {
      endpoint: data.endpoint,
      feedbackToken: data.feedbackToken,
      traceId: data.traceId,
      spanId: data.spanId,
      sessionId: data.sessionId,
      comment: data.comment !== undefined && data.comment !== "false",
      transport: data.transport,
    };
    if (data.response) {
      var ref = JSON.parse(data.response);
      options.traceId = options.traceId || ref.trace_id;
      options.spanId = options.spanId || ref.span_id;
      options.feedbackToken = options.feedbackToken || ref.feedback_token;
    }
    return options;
  }

  /** The request body for one piece of feedback. */
  function body(options, signal, extra) {
    if (!options.feedbackToken) {
      throw new Error("closedloop-feedback: no feedback token");
    }
    var ids =
      options.traceId && options.spanId
        ? { traceId: options.traceId, spanId: options.spanId }
        : idsFromToken(options.feedbackToken);
    var out = {
      response: { trace_id: ids.traceId, span_id: ids.spanId },
      signal: signal,
      feedback_token: options.feedbackToken,
      idempotency_id: (extra && extra.idempotencyId) || idempotencyId(),
    };
    if (options.sessionId) {
      out.session_id = options.sessionId;
    }
    if (extra && extra.comment) {
      out.comment = String(extra.comment).slice(0, MAX_COMMENT_CHARS);
    }
    if (extra && extra.category) {
      out.category = extra.category;
    }
    return out;
  }

  function beacon(url, payload) {
    if (
      typeof navigator.sendBeacon === "function" &&
      navigator.sendBeacon(url, new Blob([payload], { type: CONTENT_TYPE }))
    ) {
      return "beacon";
    }
    throw new Error("closedloop-feedback: the browser did not queue the beacon");
  }

  /**
   * Sends one piece of feedback; resolves to the transport used ("fetch" or "beacon"). A
   * refusal by the receiver (HTTP 4xx other than 429) rejects without a second attempt.
   */
  function send(options, signal, extra) {
    var url, payload;
    try {
      url = feedbackUrl(options.endpoint);
      payload = JSON.stringify(body(options, signal, extra));
    } catch (error) {
      return Promise.reject(error);
    }
    if (options.transport === "beacon" || typeof fetch !== "function") {
      return new Promise(function (resolve) {
        resolve(beacon(url, payload));
      });
    }
    var refused = null;
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": CONTENT_TYPE },
      body: payload,
      keepalive: true,
      credentials: "omit",
    })
      .then(function (response) {
        if (response.ok) {
          return "fetch";
        }
        if (response.status >= 400 && response.status < 500 && response.status !== 429) {
          refused = new Error("closedloop-feedback: the receiver answered HTTP " + response.status);
          throw refused;
        }
        return beacon(url, payload);
      })
      .catch(function (error) {
        if (error === refused) {
          throw error;
        }
        return beacon(url, payload);
      });
  }

  function button(label, text) {
    var el = document.createElement("button");
    el.type = "button";
    el.setAttribute("aria-label", label);
    el.setAttribute("aria-pressed", "false");
    el.textContent = text;
    return el;
  }

  var stylesAdded = false;

  /**
   * Adds the stylesheet once: a constructed stylesheet where the browser has them (a page's
   * Content-Security-Policy does not need 'unsafe-inline' for it), else a <style> element.
   */
  function addStyles() {
    if (stylesAdded || document.getElementById(STYLE_ID)) {
      return;
    }
    stylesAdded = true;
    if (typeof CSSStyleSheet === "function" && "adoptedStyleSheets" in document) {
      try {
        var sheet = new CSSStyleSheet();
        sheet.replaceSync(CSS);
        document.adoptedStyleSheets = document.adoptedStyleSheets.concat([sheet]);
        return;
      } catch (error) {
        // Fall through to a <style> element.
      }
    }
    var style = document.createElement("style");
    style.id = STYLE_ID;
    style.textContent = CSS;
    document.head.appendChild(style);
  }

  /** Renders the buttons into `element` and wires them up. */
  function mount(element, options) {
    if (element.getAttribute("data-closedloop-mounted") === "true") {
      return;
    }
    element.setAttribute("data-closedloop-mounted", "true");
    options = options || optionsFrom(element);
    addStyles();

    var root = document.createElement("span");
    root.className = "closedloop-feedback";
    var up = button("Helpful", "\uD83D\uDC4D");
    up.className = "closedloop-feedback-up";
    var down = button("Not helpful", "\uD83D\uDC4E");
    down.className = "closedloop-feedback-down";
    var status = document.createElement("span");
    status.className = "closedloop-feedback-status";
    status.setAttribute("role", "status");
    var form = document.createElement("form");
    form.hidden = true;
    var comment = document.createElement("textarea");
    comment.maxLength = MAX_COMMENT_CHARS;
    comment.placeholder = "What was wrong? (optional)";
    comment.setAttribute("aria-label", "What was wrong? (optional)");
    var submit = document.createElement("button");
    submit.type = "submit";
    submit.textContent = "Send";
    var skip = document.createElement("button");
    skip.type = "button";
    skip.textContent = "Skip";
    form.appendChild(comment);
    form.appendChild(submit);
    form.appendChild(skip);
    root.appendChild(up);
    root.appendChild(down);
    root.appendChild(status);
    root.appendChild(form);
    element.appendChild(root);

    var done = false;
    var pending = null;

    function finish(signal, extra) {
      if (done) {
        return;
      }
      done = true;
      pending = null;
      form.hidden = true;
      up.disabled = true;
      down.disabled = true;
      (signal === "thumbs_up" ? up : down).setAttribute("aria-pressed", "true");
      status.textContent = "Sending\u2026";
      send(options, signal, extra).then(
        function (used) {
          status.textContent = "Thanks for your feedback.";
          element.dispatchEvent(
            new CustomEvent("closedloop-feedback", {
              bubbles: true,
              detail: { signal: signal, transport: used },
            }),
          );
        },
        function (error) {
          status.textContent = "Your feedback could not be sent.";
          element.dispatchEvent(
            new CustomEvent("closedloop-feedback-error", {
              bubbles: true,
              detail: { signal: signal, error: error },
            }),
          );
        },
      );
    }

    up.addEventListener("click", function () {
      finish("thumbs_up");
    });
    down.addEventListener("click", function () {
      if (!options.comment) {
        finish("thumbs_down");
        return;
      }
      pending = { signal: "thumbs_down" };
      down.setAttribute("aria-pressed", "true");
      up.disabled = true;
      form.hidden = false;
      comment.focus();
    });
    // The comment form sends only the thumbs down it was opened for.
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (pending) {
        finish(pending.signal, { comment: comment.value.trim() });
      }
    });
    skip.addEventListener("click", function () {
      if (pending) {
        finish(pending.signal);
      }
    });
    // A thumbs down whose comment was never sent still counts: send it as the page goes.
    document.addEventListener("visibilitychange", function () {
      if (pending && document.visibilityState === "hidden") {
        options = Object.assign({}, options, { transport: "beacon" });
        finish(pending.signal, { comment: comment.value.trim() });
      }
    });
  }

  function mountAll() {
    var elements = document.querySelectorAll("[data-closedloop-feedback]");
    for (var i = 0; i < elements.length; i++) {
      try {
        mount(elements[i]);
      } catch (error) {
        if (window.console) {
          console.error(error);
        }
      }
    }
  }

  window.closedloopFeedback = { mount: mount, send: send };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mountAll);
  } else {
    mountAll();
  }
})();
