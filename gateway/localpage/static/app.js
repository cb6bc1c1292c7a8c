// Roost local page: live readings and joining devices, from the gateway's Server-Sent Events stream.
// Hand-written, no library, nothing loaded from outside the gateway.
"use strict";

(function () {
  var table = document.getElementById("readings");
  var joining = document.getElementById("joining");
  var state = document.getElementById("live-state");
  var nearbyNote = document.getElementById("nearby-new");

  // Pairing page: say when devices were heard that the list on screen does not show yet (a reload shows
  // them; the list is not redrawn under the technician's fingers while a bind key is being typed).
  if (nearbyNote) {
    var shown = {};
    var cards = document.querySelectorAll("li.device[data-mac]");
    for (var c = 0; c < cards.length; c++) {
      shown[cards[c].getAttribute("data-mac")] = true;
    }
    var checkNearby = function () {
      fetch("/api/nearby", { credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          return r.ok ? r.json() : [];
        })
        .then(function (devices) {
          var fresh = devices.filter(function (d) {
            return !shown[d.id];
          });
          if (fresh.length) {
            nearbyNote.hidden = false;
            nearbyNote.querySelector("span").textContent =
              fresh.length + (fresh.length === 1 ? " more device heard: " : " more devices heard: ");
          }
        })
        .catch(function () {});
    };
    checkNearby();
    setInterval(checkNearby, 5000);
  }

  if (!table && !joining) {
    return;
  }
  var body = table ? table.tBodies[0] : null;

  function say(text, what) {
    if (state) {
      state.textContent = text;
      state.setAttribute("data-state", what);
    }
  }

  function stamp(ts) {
    return new Date(ts * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  function valueText(r) {
    var v = r.value;
    if (typeof v === "number" && !Number.isInteger(v)) {
      v = Number(v.toPrecision(6));
    }
    return r.unit ? v + " " + r.unit : String(v);
  }

  function cell(row, label, text, cls) {
    var td = document.createElement("td");
    td.setAttribute("data-label", label);
    if (cls) {
      td.className = cls;
    }
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function showReading(r) {
    if (!body) {
      return;
    }
    var key = r.sensor + "|" + r.metric;
    var row = null;
    for (var i = 0; i < body.rows.length; i++) {
      if (body.rows[i].getAttribute("data-key") === key) {
        row = body.rows[i];
        break;
      }
    }
    if (!row) {
      row = document.createElement("tr");
      row.setAttribute("data-key", key);
      cell(row, "Sensor", r.sensor);
      cell(row, "Metric", r.metric);
      cell(row, "Value", "", "value");
      cell(row, "When", "", "ts");
      body.appendChild(row);
    }
    row.querySelector(".value").textContent = valueText(r);
    row.querySelector(".ts").textContent = stamp(r.ts);
    row.classList.remove("fresh");
    void row.offsetWidth; // restart the highlight
    row.classList.add("fresh");
  }

  function showEvent(ev) {
    if (!joining || ev.kind !== "device") {
      return;
    }
    var none = joining.querySelector(".none");
    if (none) {
      none.remove();
    }
    var li = document.createElement("li");
    li.textContent = stamp(ev.ts) + ": " + ev.message;
    joining.insertBefore(li, joining.firstChild);
  }

  var source = new EventSource("/api/live");
  source.onopen = function () {
    say("Live: values update as they arrive.", "open");
  };
  source.onmessage = function (msg) {
    var items;
    try {
      items = JSON.parse(msg.data);
    } catch (err) {
      return;
    }
    for (var i = 0; i < items.length; i++) {
      if (items[i].type === "reading") {
        showReading(items[i]);
      } else if (items[i].type === "event") {
        showEvent(items[i]);
      }
    }
  };
  source.addEventListener("signedout", function () {
    source.close();
    say("Signed out after a while without use: reload the page to sign in again.", "closed");
  });
  source.onerror = function () {
    say("Connection to the gateway lost; trying again…", "retrying");
  };
})();
