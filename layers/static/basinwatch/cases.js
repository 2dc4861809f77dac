/* BasinWatch web map: enforcement cases and discharge exceedances, with a time control.
 *
 * BasinWatchCases.init(map, config) adds, beside the planners' map of webmap.js:
 *  - a case layer from /cases?f=geojson&as_of=<date>: one point per case coloured by its
 *    status on that date, a red ring when its deadline has passed; popups with status,
 *    deadline, departments, documents and the year's exceedances;
 *  - an exceedance layer from /monitoring/map?as_of=<date>: monitored enterprises sized by
 *    their exceedances since 1 January, a dashed ring when "serious";
 *  - a panel (bottom left): the layers, a status / basin / overdue filter, and a date slider
 *    over the plan's year with a play button; every change refetches both layers.
 * Everything from the API is HTML-escaped before it reaches innerHTML. Texts, statuses and
 * colours come from /cases/meta (layers/data/cases.toml). Test state: window.bwCases.
 * A plug-in of the served map (webmap.toml [plugins]): it starts from
 * BasinWatchMap.plugins.onInit. No style attributes in markup (the page's CSP forbids
 * them): colours go through data-colour and CSSOM (withColours).
 */
(function (global) {
  "use strict";

  function esc(value) {
    if (value === null || value === undefined) { return ""; }
    return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  function qs(params) {
    return Object.keys(params).filter(function (k) {
      return params[k] !== null && params[k] !== undefined && params[k] !== "";
    }).map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(params[k]);
    }).join("&");
  }

  var DAY = 86400000;
  function isoDay(ms) { return new Date(ms).toISOString().slice(0, 10); }
  function dayMs(iso) { return Date.parse(iso + "T00:00:00Z"); }

  /* Markup -> a node whose [data-colour] elements get their background through CSSOM. */
  function withColours(html) {
    var div = document.createElement("div");
    div.innerHTML = html;
    Array.prototype.forEach.call(div.querySelectorAll("[data-colour]"), function (e) {
      e.style.background = e.getAttribute("data-colour");
    });
    return div;
  }

  function docs(value) {
    if (!value) { return ""; }
    try { return JSON.parse(value).map(esc).join("<br>"); } catch (e) { return esc(value); }
  }

  function init(map, cfg, host) {
    var api = (cfg && cfg.api) || "";
    var st = {ready: false, asOf: null, cases: 0, overdue: 0, exceeding: 0, requests: 0,
              error: null, filters: {status: "", basin_id: "", overdue: false}};
    global.bwCases = st;
    var meta = null, statusOf = {};
    map.createPane("bwCases").style.zIndex = 460;
    var casesLayer = L.layerGroup(), excLayer = L.layerGroup();
    st.map = map;
    st.layers = {cases: casesLayer, exceedances: excLayer};
    var controller = null, panel = null, countBox = null, slider = null, dateBox = null;
    var playTimer = null;

    function getJSON(url, signal) {
      st.requests += 1;
      return fetch(url, {signal: signal, headers: {"Accept": "application/json"}})
        .then(function (r) {
          return r.json().then(function (b) {
            if (!r.ok) { throw new Error((b && b.description) || ("HTTP " + r.status)); }
            return b;
          });
        });
    }

    function row(label, value) {
      return value === "" || value === null || value === undefined ? "" :
        "<tr><th>" + esc(label) + "</th><td>" + value + "</td></tr>";
    }

    function casePopup(p) {
      var ui = meta.ui;
      return '<div class="bw-popup"><b>' + esc(p.name) + "</b><table>" +
        row(ui.popup_case, esc(p.case_id)) +
        row(ui.popup_status, '<span class="bw-dot" data-colour="' + esc(p.colour) +
            '"></span>' + esc(p.status_label)) +
        row(ui.popup_status_date, esc(p.status_date)) +
        row(ui.popup_due, esc(p.due)) +
        row(ui.popup_overdue, p.overdue ? esc(p.days_overdue) : "") +
        row(ui.popup_verdict, esc((meta.verdicts || {})[p.verdict] || p.verdict)) +
        row(ui.popup_departments, esc(p.departments)) +
        row(ui.popup_documents, docs(p.documents)) +
        row(ui.popup_exceedances, p.exceedances ? esc(p.exceedances) : "") +
        row(ui.popup_pollutants, esc(p.exceeded_pollutants)) +
        row(ui.popup_serious, esc(p.serious)) +
        "</table></div>";
    }

    function excPopup(p) {
      var ui = meta.ui;
      return '<div class="bw-popup"><b>' + esc(p.name) + "</b><table>" +
        row(ui.popup_samples, esc(p.samples)) +
        row(ui.popup_exceedances, esc(p.exceedances)) +
        row(ui.popup_pollutants, esc(p.pollutants)) +
        row(ui.popup_serious, esc(p.serious)) + "</table></div>";
    }

    function drawCases(fc) {
      casesLayer.clearLayers();
      var overdue = 0;
      fc.features.forEach(function (f) {
        if (!f.geometry) { return; }
        var p = f.properties, c = f.geometry.coordinates;
        if (p.overdue) { overdue += 1; }
        L.circleMarker([c[1], c[0]], {
          pane: "bwCases", radius: 6, weight: p.overdue ? 3 : 1,
          color: p.overdue ? "#b2182b" : "#333333", fillColor: p.colour, fillOpacity: 0.9
        }).bindPopup(function () { return withColours(casePopup(p)); },
                     {className: "bw-case-popup"})
          .addTo(casesLayer).bwCaseId = p.case_id;
      });
      st.cases = fc.features.length;
      st.overdue = overdue;
    }

    function drawExceedances(fc) {
      excLayer.clearLayers();
      var n = 0;
      fc.features.forEach(function (f) {
        var p = f.properties, c = f.geometry.coordinates;
        if (!p.exceedances) { return; }
        n += 1;
        L.circleMarker([c[1], c[0]], {
          pane: "bwCases", radius: 5 + 2.5 * Math.sqrt(p.exceedances), weight: 2,
          dashArray: p.serious ? "4 3" : null, color: "#7a0177", fillColor: "#f768a1",
          fillOpacity: 0.35
        }).bindPopup(function () { return excPopup(p); }).addTo(excLayer);
      });
      st.exceeding = n;
    }

    function showCount() {
      if (!countBox) { return; }
      countBox.textContent = meta.ui.count.replace("{cases}", st.cases)
        .replace("{overdue}", st.overdue).replace("{exceeding}", st.exceeding);
    }

    function refresh() {
      if (controller) { controller.abort(); }
      controller = new AbortController();
      var signal = controller.signal, asOf = dateBox.value;
      st.ready = false;
      var caseParams = {f: "geojson", as_of: asOf, status: st.filters.status,
                        basin_id: st.filters.basin_id, overdue: st.filters.overdue ? "true" : ""};
      var monParams = {as_of: asOf, basin_id: st.filters.basin_id};
      return Promise.all([
        getJSON(api + "/cases?" + qs(caseParams), signal),
        getJSON(api + "/monitoring/map?" + qs(monParams), signal)
      ]).then(function (res) {
        drawCases(res[0]);
        drawExceedances(res[1]);
        st.asOf = asOf;
        st.error = null;
        showCount();
        st.ready = true;
      }).catch(function (err) {
        if (err.name === "AbortError") { return; }
        st.error = err.message;
        countBox.textContent = err.message;
        countBox.className = "bw-count bw-error";
      });
    }

    function field(body, label, input) {
      var wrap = L.DomUtil.create("label", "bw-field", body);
      var span = L.DomUtil.create("span", "", wrap);
      span.textContent = label;
      wrap.appendChild(input);
      return input;
    }

    function select(options) {
      var s = document.createElement("select");
      options.forEach(function (o) {
        var opt = document.createElement("option");
        opt.value = o[0];
        opt.textContent = o[1];
        s.appendChild(opt);
      });
      return s;
    }

    function setDay(iso, fetchNow) {
      dateBox.value = iso;
      slider.value = String(Math.round((dayMs(iso) - dayMs(meta.start)) / DAY));
      if (fetchNow) { refresh(); }
    }

    function buildPanel() {
      var ui = meta.ui;
      var ctl = L.control({position: "bottomleft"});
      ctl.onAdd = function () {
        panel = L.DomUtil.create("div", "bw-panel bw-cases-panel");
        panel.id = "bw-cases-panel";
        L.DomEvent.disableClickPropagation(panel);
        L.DomEvent.disableScrollPropagation(panel);
        var head = L.DomUtil.create("div", "bw-panel-head", panel);
        head.innerHTML = "<b>" + esc(ui.panel_title) + "</b>";
        var toggle = L.DomUtil.create("button", "bw-btn bw-toggle", head);
        toggle.type = "button";
        toggle.textContent = "☰";
        toggle.addEventListener("click", function () {
          panel.classList.toggle("bw-collapsed");
        });
        // the time control stays visible when the panel is collapsed
        var time = L.DomUtil.create("div", "bw-cases-time", panel);
        dateBox = document.createElement("input");
        dateBox.type = "date";
        dateBox.id = "bw-case-date";
        dateBox.min = meta.start;
        dateBox.max = meta.end;
        field(time, ui.as_of, dateBox).addEventListener("change", function () {
          if (dateBox.value) { setDay(dateBox.value, true); }
        });
        var play = L.DomUtil.create("button", "bw-btn", dateBox.parentNode);
        play.type = "button";
        play.id = "bw-case-play";
        play.textContent = ui.play;
        slider = document.createElement("input");
        slider.type = "range";
        slider.id = "bw-case-slider";
        slider.min = "0";
        slider.max = String(Math.round((dayMs(meta.end) - dayMs(meta.start)) / DAY));
        slider.step = "1";
        slider.className = "bw-case-slider";
        slider.setAttribute("aria-label", ui.as_of);
        time.appendChild(slider);
        slider.addEventListener("input", function () {
          dateBox.value = isoDay(dayMs(meta.start) + Number(slider.value) * DAY);
        });
        slider.addEventListener("change", function () { refresh(); });
        play.addEventListener("click", function () {
          if (playTimer) {
            clearInterval(playTimer); playTimer = null; play.textContent = ui.play; return;
          }
          play.textContent = ui.pause;
          playTimer = setInterval(function () {
            var next = Math.min(Number(slider.value) + 7, Number(slider.max));
            setDay(isoDay(dayMs(meta.start) + next * DAY), true);
            if (next >= Number(slider.max)) { play.click(); }
          }, 1200);
        });
        countBox = L.DomUtil.create("div", "bw-count", time);
        countBox.id = "bw-case-count";

        var body = L.DomUtil.create("div", "bw-panel-body", panel);
        [[casesLayer, ui.cases_layer, "bw-cases-toggle"],
         [excLayer, ui.exceedance_layer, "bw-exc-toggle"]].forEach(function (x) {
          var lab = L.DomUtil.create("label", "bw-check", body);
          var box = document.createElement("input");
          box.type = "checkbox";
          box.checked = true;
          box.id = x[2];
          box.addEventListener("change", function () {
            if (box.checked) { x[0].addTo(map); } else { map.removeLayer(x[0]); }
          });
          lab.appendChild(box);
          lab.appendChild(document.createTextNode(" " + x[1]));
        });
        var statusSel = field(body, ui.status, select([["", ui.all]].concat(
          meta.statuses.map(function (s) { return [s.id, s.label]; }))));
        statusSel.id = "bw-case-status";
        statusSel.addEventListener("change", function () {
          st.filters.status = statusSel.value; refresh();
        });
        var basinSel = field(body, ui.basin, select([["", ui.all]].concat(
          meta.zones.map(function (z) { return [z.id, z.label]; }))));
        basinSel.id = "bw-case-basin";
        basinSel.addEventListener("change", function () {
          st.filters.basin_id = basinSel.value; refresh();
        });
        var over = document.createElement("input");
        over.type = "checkbox";
        over.id = "bw-case-overdue";
        field(body, ui.overdue_only, over).addEventListener("change", function () {
          st.filters.overdue = over.checked; refresh();
        });
        var legend = L.DomUtil.create("div", "bw-note bw-cases-legend", body);
        legend.appendChild(withColours(meta.statuses.map(function (s) {
          return '<span><i class="bw-dot" data-colour="' + esc(s.colour) + '"></i>' +
            esc(s.label) + "</span>";
        }).join(" ")));
        if (global.innerHeight < 820) { panel.classList.add("bw-collapsed"); }
        return panel;
      };
      if (host && host.addPanelSection) {  // inside the served map's panel, not over it
        host.addPanelSection(ui.panel_title, ctl.onAdd(map));
      } else {
        ctl.addTo(map);
      }
    }

    getJSON(api + "/cases/meta").then(function (m) {
      meta = m;
      meta.statuses.forEach(function (s) { statusOf[s.id] = s; });
      buildPanel();
      casesLayer.addTo(map);
      excLayer.addTo(map);
      setDay(meta.default, true);
    }).catch(function (err) { st.error = err.message; });
    return st;
  }

  global.BasinWatchCases = {init: init, esc: esc};
  if (global.BasinWatchMap && global.BasinWatchMap.plugins) {  // the served map's plug-in hook
    global.BasinWatchMap.plugins.onInit(function (bw) { init(bw.map, bw.cfg, bw); });
  }
})(window);
