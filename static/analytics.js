/*! analytics.js: the tracking script of this analytics platform (same licence as the project).
 *
 *   <script src="https://YOUR-ANALYTICS-HOST/static/analytics.js" data-key="YOUR-INGEST-KEY" defer></script>
 *   <script>analytics.track("signup", {plan: "pro"}); analytics.identify("user-42");</script>
 *
 * Sends a page_view per page (URL, path, referrer, title; history.pushState too), and what the
 * page tracks, to POST /api/v1/events as {batch, sentAt} (the server corrects clock skew).
 * The user id is the identified one, else an anonymous id kept in localStorage; the session
 * id lives in sessionStorage and is renewed after 30 minutes without an event. Events are
 * batched (sent after 1 s, or at 50), kept in localStorage until the server has them (a
 * failed send is retried with the same eventIds, so nothing is counted twice), and sent with
 * navigator.sendBeacon when the page is hidden. data-api sets another server; data-pageviews="off"
 * turns the automatic page views off. Calls made before the script loads may be queued in
 * window.analytics as [method, ...arguments] arrays.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var early = window.analytics;
  if (!script || (early && early.loaded)) return;
  var key = script.getAttribute("data-key") || "";
  var endpoint = (script.getAttribute("data-api") || new URL(script.src).origin) + "/api/v1/events";
  var STORE = "analytics:", IDLE_MS = 30 * 60 * 1000, WAIT_MS = 1000, BATCH = 50, KEEP = 1000;

  function id() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }
  function read(store, name) { try { return store.getItem(STORE + name); } catch (e) { return null; } }
  function write(store, name, value) {
    try { value === null ? store.removeItem(STORE + name) : store.setItem(STORE + name, value); } catch (e) {}
  }

  var anonymousId = read(localStorage, "anonymousId") || id();
  write(localStorage, "anonymousId", anonymousId);
  var queue = [];
  try { queue = JSON.parse(read(localStorage, "queue") || "[]"); } catch (e) {}
  var timer = null, sending = false, backoff = 0;

  function userId() { return read(localStorage, "userId") || anonymousId; }
  function sessionId() {
    var now = Date.now(), session = null;
    try { session = JSON.parse(read(sessionStorage, "session")); } catch (e) {}
    if (!session || now - session.last > IDLE_MS) session = { id: id() };
    session.last = now;
    write(sessionStorage, "session", JSON.stringify(session));
    return session.id;
  }
  function save() { write(localStorage, "queue", JSON.stringify(queue.slice(-KEEP))); }
  function drop(sent) {
    var gone = {};
    sent.forEach(function (e) { gone[e.eventId] = true; });
    queue = queue.filter(function (e) { return !gone[e.eventId]; });
    save();
  }
  function body(batch) { return JSON.stringify({ batch: batch, sentAt: new Date().toISOString() }); }
  function schedule(ms) { if (timer === null) timer = setTimeout(flush, ms); }

  function flush() {
    timer = null;
    if (sending || !queue.length) return;
    var batch = queue.slice(0, BATCH);
    sending = true;
    fetch(endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-API-Key": key },
      body: body(batch),
      keepalive: true,
    })
      .then(function (response) {
        var retry = response.status >= 500 || response.status === 429 || response.status === 408;
        if (retry) throw new Error("HTTP " + response.status);
        drop(batch); // stored, duplicates, or refused for good (bad key, origin, events)
        backoff = 0;
      })
      .catch(function () { backoff = Math.min(backoff ? backoff * 2 : 1000, 60000); })
      .then(function () {
        sending = false;
        if (queue.length) schedule(backoff);
      });
  }

  function beacon() {
    if (!queue.length || !navigator.sendBeacon) return;
    var batch = queue.slice(0, BATCH);
    var blob = new Blob([body(batch)], { type: "text/plain" }); // no preflight: the key goes in the URL
    if (navigator.sendBeacon(endpoint + "?apiKey=" + encodeURIComponent(key), blob)) drop(batch);
  }

  function track(name, properties) {
    queue.push({
      eventId: id(),
      userId: userId(),
      eventName: String(name),
      timestamp: new Date().toISOString(),
      properties: properties || {},
      sessionId: sessionId(),
      pageUrl: location.href,
    });
    if (queue.length > KEEP) queue = queue.slice(-KEEP);
    save();
    schedule(queue.length >= BATCH ? 0 : WAIT_MS);
  }
  function page() {
    track("page_view", {
      url: location.href,
      path: location.pathname,
      referrer: document.referrer || null,
      title: document.title,
    });
  }
  function identify(newUserId) {
    write(localStorage, "userId", String(newUserId));
    track("identify", { anonymousId: anonymousId });
  }
  function reset() {
    write(localStorage, "userId", null);
    anonymousId = id();
    write(localStorage, "anonymousId", anonymousId);
    write(sessionStorage, "session", null);
  }

  var api = { loaded: true, track: track, page: page, identify: identify, reset: reset, flush: flush };
  window.analytics = api;
  if (Array.isArray(early)) {
    early.forEach(function (call) { if (api[call[0]]) api[call[0]].apply(null, call.slice(1)); });
  }
  if (script.getAttribute("data-pageviews") !== "off") {
    page();
    var push = history.pushState;
    history.pushState = function () {
      push.apply(this, arguments);
      page();
    };
    window.addEventListener("popstate", page);
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") beacon();
  });
  window.addEventListener("pagehide", beacon);
  if (queue.length) schedule(0); // left by an earlier page
})();
