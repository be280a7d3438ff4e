/* The dashboard's live stream: ws/events?project=<slug>, signed in by the session cookie.
   On the live page it fills the events table (newest first, at most CAP rows) and runs the
   filters and Pause; on any page it keeps the [data-live-stat] tiles (the overview's
   "active, last 5 min") up to date from the stream's stats messages. Reconnects with
   backoff. Event data only ever reaches the page as text (textContent), never as HTML. */
(function () {
  "use strict";
  var root = document.querySelector("[data-live]");
  if (!root || !window.WebSocket) return;
  var CAP = 200;
  var REFUSED = { 4400: true, 4401: true, 4403: true }; // retrying would be refused again
  var slug = root.getAttribute("data-live");
  var usersUrl = root.getAttribute("data-users-url");
  var rows = find("[data-live-rows]");
  var form = find("[data-live-filters]");
  var pauseButton = find("[data-live-pause]");
  var socket = null, retries = 0, timer = null, refusal = "";
  var paused = false, waiting = [], counts = { received: 0, waiting: 0 }, refilter = false;

  function find(selector) { return root.querySelector(selector); }

  function status(text) {
    var element = find("[data-live-status]");
    if (element) element.textContent = text;
  }

  function setValue(element, value) {
    element.textContent = value.toLocaleString();
    element.setAttribute("data-value", String(value));
  }

  function count(name, value) {
    counts[name] = value;
    var element = find('[data-live-count="' + name + '"]');
    if (element) setValue(element, value);
  }

  function filters() {
    var values = { eventName: "", userId: "" };
    if (form) {
      values.eventName = form.elements.eventName.value.trim();
      values.userId = form.elements.userId.value.trim();
    }
    return values;
  }

  function query() {
    var chosen = filters(), params = new URLSearchParams();
    if (chosen.eventName) params.set("eventName", chosen.eventName);
    if (chosen.userId) params.set("userId", chosen.userId);
    return params;
  }

  function connect() {
    timer = null;
    refusal = "";
    var params = query();
    params.set("project", slug);
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws/events?" + params.toString());
    socket.onmessage = function (message) {
      var parsed;
      try {
        parsed = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      handle(parsed);
    };
    socket.onclose = function (event) {
      socket = null;
      if (REFUSED[event.code]) {
        status(refusal || "Not signed in to this project any more: reload the page.");
        return;
      }
      var delay = Math.min(30000, 1000 * Math.pow(2, retries++)) * (0.5 + Math.random() / 2);
      status("Disconnected; reconnecting in " + Math.ceil(delay / 1000) + " s…");
      timer = setTimeout(connect, delay);
    };
  }

  function handle(message) {
    if (message.type === "event") {
      count("received", counts.received + 1);
      if (!paused) return show([message.event]);
      waiting.push(message.event);
      if (waiting.length > CAP) waiting.shift();
      count("waiting", counts.waiting + 1);
    } else if (message.type === "stats") {
      var tiles = root.querySelectorAll("[data-live-stat]");
      for (var i = 0; i < tiles.length; i++) {
        var value = message[tiles[i].getAttribute("data-live-stat")];
        if (typeof value === "number") setValue(tiles[i], value);
      }
    } else if (message.type === "subscribed") {
      retries = 0;
      if (refilter) clear();
      refilter = false;
      var shown = [];
      if (message.eventName) shown.push("event " + message.eventName);
      if (message.userId) shown.push("user " + message.userId);
      status("Live" + (shown.length ? ": " + shown.join(", ") : ""));
    } else if (message.type === "lagged") {
      status("Live; " + message.dropped + " events came too fast to show.");
    } else if (message.type === "error" && message.error) {
      refusal = message.error.message;
      status(refusal);
    }
  }

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function row(event) {
    var tr = document.createElement("tr");
    var when = new Date(event.timestamp);
    cell(tr, isNaN(when) ? event.timestamp : when.toLocaleString()).title = event.timestamp;
    cell(tr, event.eventName);
    var link = document.createElement("a");
    link.href = usersUrl + "/" + encodeURIComponent(event.userId);
    link.textContent = event.userId;
    cell(tr, "").appendChild(link);
    var properties = JSON.stringify(event.properties || {});
    var td = cell(tr, properties.length > 160 ? properties.slice(0, 159) + "…" : properties);
    td.className = "props";
    td.title = properties;
    return tr;
  }

  function show(events) { // in arrival order: each goes on top
    if (!rows) return;
    for (var i = 0; i < events.length; i++) rows.insertBefore(row(events[i]), rows.firstChild);
    while (rows.children.length > CAP) rows.removeChild(rows.lastChild);
    find("[data-live-empty]").hidden = rows.children.length > 0;
  }

  function clear() {
    if (rows) rows.textContent = "";
    waiting = [];
    count("waiting", 0);
    show([]);
  }

  if (form) {
    form.addEventListener("submit", function (submit) {
      submit.preventDefault();
      var params = query();
      history.replaceState(null, "", location.pathname + (params.toString() ? "?" + params : ""));
      refilter = true;
      if (socket && socket.readyState === WebSocket.OPEN) {
        var chosen = filters();
        socket.send(JSON.stringify({
          type: "subscribe", eventName: chosen.eventName || null, userId: chosen.userId || null,
        }));
      } else { // refused, waiting to retry or still connecting: again with these filters, now
        if (socket) {
          socket.onclose = null;
          socket.close();
        }
        clearTimeout(timer);
        retries = 0;
        connect();
      }
    });
  }

  if (pauseButton) {
    pauseButton.addEventListener("click", function () {
      paused = !paused;
      pauseButton.textContent = paused ? "Resume" : "Pause";
      pauseButton.setAttribute("aria-pressed", String(paused));
      if (!paused) {
        show(waiting);
        waiting = [];
        count("waiting", 0);
      }
    });
  }

  connect();
})();
