// Fieldstation dashboard: the browser's time zone and chart width for the server, live updates by
// polling, range switching without a reload, hover read-outs and copy buttons. Pages work without it.
(function () {
  "use strict";
  var YEAR = 365 * 24 * 3600;

  function setCookie(name, value) {
    document.cookie = name + "=" + encodeURIComponent(value) + "; path=/; max-age=" + YEAR + "; SameSite=Lax";
  }
  function getCookie(name) {
    var m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : null;
  }

  var zone = "UTC";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { /* old browser */ }
  var zoneChanged = getCookie("fs_tz") !== zone;
  setCookie("fs_tz", zone);

  function slotWidth(wide) {
    var slot = document.querySelector(wide ? ".chart-box.wide .chart-slot" : ".chart-box:not(.wide) .chart-slot");
    return slot ? Math.round(slot.clientWidth) : 0;
  }

  // -- hover read-outs ------------------------------------------------------------------------
  function formatTime(ms, tz) {
    try {
      return new Intl.DateTimeFormat(undefined, { timeZone: tz, year: "numeric", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit" }).format(new Date(ms));
    } catch (e) { return new Date(ms).toISOString(); }
  }

  function attachHover(svg) {
    var raw = svg.getAttribute("data-hover");
    if (!raw || svg.__hover) return;
    svg.__hover = true;
    var data = JSON.parse(raw);
    var plot = (svg.getAttribute("data-plot") || "0,0,0,0").split(",").map(Number);
    var tip = document.getElementById("tooltip");
    var line = document.createElementNS("http://www.w3.org/2000/svg", "line");
    line.setAttribute("class", "hover-line");
    line.setAttribute("y1", plot[1]); line.setAttribute("y2", plot[1] + plot[3]);
    line.style.display = "none";
    svg.appendChild(line);
    svg.addEventListener("pointermove", function (ev) {
      if (!data.series.length || !tip) return;
      var pt = svg.createSVGPoint(); pt.x = ev.clientX; pt.y = ev.clientY;
      var local = pt.matrixTransform(svg.getScreenCTM().inverse());
      if (local.x < plot[0] || local.x > plot[0] + plot[2]) { hide(); return; }
      var rows = [], when = null, lx = null;
      data.series.forEach(function (s) {
        var best = null;
        s.points.forEach(function (p) { if (best === null || Math.abs(p[0] - local.x) < Math.abs(best[0] - local.x)) best = p; });
        if (best) {
          if (when === null) { when = best[1]; lx = best[0]; }
          var unit = s.unit ? " " + escapeHtml(s.unit) : "";
          // An averaged bucket also shows its lowest and highest reading, so a spike is not averaged away.
          var range = best.length > 4 ? ' <span class="range">(' + best[3] + " – " + best[4] + unit + ")</span>" : "";
          // Short windows also carry the bucket's median (plots.MEDIAN_READINGS).
          if (best.length > 5) range += ' <span class="median">median ' + best[5] + unit + "</span>";
          rows.push('<div><span class="swatch" style="background:' + s.colour + '"></span>' + escapeHtml(s.label) + ": " +
            (best.length > 4 ? "avg " : "") + best[2] + unit + range + "</div>");
        }
      });
      if (when === null) { hide(); return; }
      line.setAttribute("x1", lx); line.setAttribute("x2", lx); line.style.display = "";
      tip.innerHTML = "<div>" + formatTime(when, data.zone) + "</div>" + rows.join("");
      tip.hidden = false;
      var x = ev.pageX + 12, y = ev.pageY + 12;
      if (x + tip.offsetWidth > window.scrollX + document.documentElement.clientWidth) x = ev.pageX - tip.offsetWidth - 12;
      tip.style.left = x + "px"; tip.style.top = y + "px";
    });
    svg.addEventListener("pointerleave", hide);
    function hide() { line.style.display = "none"; if (tip) tip.hidden = true; }
  }
  function escapeHtml(s) { return String(s).replace(/[&<>"]/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]; }); }
  function attachAll() { document.querySelectorAll("svg.chart").forEach(attachHover); }

  // -- live updates and range switching -------------------------------------------------------
  var live = document.getElementById("latest");
  var params = new URLSearchParams(window.location.search);
  var timer = null, busy = false, pending = false;

  function refresh(force) {
    if (!live) return;
    if (busy) { pending = pending || force; return; }  // a range switch waits for the poll in flight
    busy = true;
    var q = new URLSearchParams(params);
    if (slotWidth(false)) q.set("width", slotWidth(false));
    if (slotWidth(true)) q.set("wide", slotWidth(true));
    q.set("tz", zone);
    if (!force) q.set("since", live.getAttribute("data-version"));
    fetch(live.getAttribute("data-live-url") + "?" + q.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body) return;
        live.setAttribute("data-version", body.version);
        if (!body.changed) return;
        live.innerHTML = body.latest;
        var start = document.querySelector("form.custom input[name=start]");
        var end = document.querySelector("form.custom input[name=end]");
        if (start && end && body.window) { start.value = body.window.start; end.value = body.window.end; }
        Object.keys(body.charts).forEach(function (id) {
          var slot = document.getElementById(id);
          if (slot) slot.innerHTML = body.charts[id];
        });
        attachAll();
        document.dispatchEvent(new CustomEvent("fieldstation:updated"));
      })
      .catch(function () { /* next poll tries again */ })
      .then(function () {
        busy = false;
        if (pending) { pending = false; refresh(true); }
      });
  }

  function switchRange(name, link) {
    params.delete("start"); params.delete("end");
    params.set("range", name);
    history.replaceState(null, "", "?" + params.toString());
    document.querySelectorAll("nav.ranges a[data-range]").forEach(function (a) {
      a.classList.toggle("active", a === link);
      if (a === link) a.setAttribute("aria-current", "true"); else a.removeAttribute("aria-current");
    });
    var csv = document.getElementById("csv-link");
    if (csv) { var u = new URL(csv.href); u.search = params.toString(); csv.href = u.toString(); }
    refresh(true);
  }

  document.addEventListener("click", function (ev) {
    var link = ev.target.closest && ev.target.closest("nav.ranges a[data-range]");
    if (link && live) { ev.preventDefault(); switchRange(link.getAttribute("data-range"), link); return; }
    var copy = ev.target.closest && ev.target.closest("button[data-copy]");
    if (copy) {
      var source = document.querySelector(copy.getAttribute("data-copy"));
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.textContent.trim()).then(function () { copy.textContent = "Copied"; });
      }
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    attachAll();
    // A Secure session cookie is dropped on plain http:// other than localhost: say so on sign-in.
    var insecure = document.getElementById("insecure-notice");
    if (insecure && !window.isSecureContext) insecure.hidden = false;
    var zoneName = document.getElementById("zone-name");
    if (zoneName) zoneName.textContent = zone;
    var stale = zoneChanged;
    [false, true].forEach(function (wide) {
      var width = slotWidth(wide);
      if (!width) return;
      setCookie(wide ? "fs_ww" : "fs_w", width);
      var drawn = document.querySelector((wide ? ".chart-box.wide" : ".chart-box:not(.wide)") + " .chart-slot svg");
      if (drawn && Math.abs(Number(drawn.getAttribute("width")) - width) > 24) stale = true;
    });
    if (!live) return;
    if (stale) refresh(true);
    var every = Number(live.getAttribute("data-poll") || 5) * 1000;
    var polls = 0;
    timer = window.setInterval(function () {
      if (document.hidden) return;
      polls += 1;
      // A preset window slides with the clock: redraw once a minute even without new data.
      refresh(polls % Math.max(Math.round(60000 / every), 1) === 0 && params.get("start") === null);
    }, every);
  });
})();
