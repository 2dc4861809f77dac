/* BasinWatch: the basin dashboard beside the map (SVG charts drawn here, no chart library).
 *
 * BasinWatchDashboard.create(bw, helpers) -> {toggle(open), refresh()}. Reads
 * /map/dashboard?<filters>&<area>: per priority basin / region and per city, counts by
 * verdict (stacked bars, verdict colours) and by industry, and capacity to exit where the
 * registry has it. Bars are SVG <rect>s with presentation attributes (no inline style, so a
 * strict CSP holds); every bar has a <title> and the table beside it the numbers.
 */
(function (global) {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, children) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) { e.appendChild(c); });
    return e;
  }

  function create(bw, h) {
    var ui = bw.ui, cfg = bw.cfg, el = h.el;
    var box = el("aside", {id: "bw-dashboard", cls: "bw-dashboard", hidden: true,
                           "aria-label": ui.dashboard_title, tabindex: "-1"});
    var body = el("div", {cls: "bw-dash-body", "aria-live": "polite"});
    box.appendChild(el("div", {cls: "bw-panel-head"}, [
      el("h2", {cls: "bw-title", text: ui.dashboard_title}),
      el("button", {type: "button", cls: "bw-btn", id: "bw-dash-close", text: "×",
                    "aria-label": ui.dashboard_close, onclick: function () { bw.toggleDashboard(false); }})]));
    box.appendChild(body);
    document.getElementById("bw-app").appendChild(box);
    L.DomEvent.disableClickPropagation(box);
    L.DomEvent.disableScrollPropagation(box);
    var open = false, ctl = null;

    function bars(groups, max) {
      var W = 300, rowH = 22, labelW = 92;
      var chart = svg("svg", {width: String(W), height: String(groups.length * rowH + 4),
                              viewBox: "0 0 " + W + " " + (groups.length * rowH + 4), role: "img",
                              "aria-label": groups.map(function (g) { return g.label + " " + g.total; }).join("; "),
                              "class": "bw-chart"});
      groups.forEach(function (g, i) {
        var y = i * rowH + 2, x = labelW;
        var row = svg("g", {"class": "bw-bar", "data-id": g.id});
        var label = svg("text", {x: "0", y: String(y + 14), "class": "bw-bar-label"});
        label.textContent = g.label;
        row.appendChild(label);
        cfg.verdicts.forEach(function (v) {
          var n = g.verdict[v[0]] || 0;
          if (!n) { return; }
          var w = Math.max(1, (W - labelW - 48) * n / max);
          var r = svg("rect", {x: x.toFixed(1), y: String(y + 3), width: w.toFixed(1), height: "15",
                               fill: v[2], "data-verdict": v[0], "data-n": String(n)});
          var t = svg("title");
          t.textContent = g.label + " · " + h.verdictLabel(v[0]) + "：" + n;
          r.appendChild(t);
          row.appendChild(r);
          x += w;
        });
        var total = svg("text", {x: (x + 4).toFixed(1), y: String(y + 14), "class": "bw-bar-total"});
        total.textContent = String(g.total);
        row.appendChild(total);
        row.addEventListener("click", function () {
          if (g.key && g.total) { h.setArea({key: g.key, value: g.id, label: g.label}, true); }
        });
        chart.appendChild(row);
      });
      return chart;
    }

    function industryTable(counts) {
      var keys = Object.keys(counts).sort(function (a, b) { return counts[b] - counts[a]; });
      var tbody = el("tbody", {}, keys.map(function (k) {
        return el("tr", {}, [el("td", {text: h.pack.industry_names[k] || k || "?"}),
                             el("td", {cls: "bw-num", text: String(counts[k])})]);
      }));
      return el("table", {cls: "bw-counts bw-industry-table"}, [tbody]);
    }

    function render(d) {
      body.textContent = "";
      var zones = d.zones.map(function (z) {
        return {id: z.id, key: z.key, label: h.pack.zones[z.id] || z.label, total: z.total, verdict: z.verdict};
      });
      var cities = d.cities.map(function (c) {
        return {id: c.id, key: "city", label: c.label, total: c.total, verdict: c.verdict};
      });
      var max = Math.max.apply(null, zones.concat(cities).map(function (g) { return g.total; }).concat([1]));
      var zmax = Math.max.apply(null, zones.map(function (g) { return g.total; }).concat([1]));
      body.appendChild(el("h3", {text: ui.by_zone}));
      body.appendChild(bars(zones, zmax));
      var legend = el("div", {cls: "bw-dash-legend"});
      cfg.verdicts.forEach(function (v) { legend.appendChild(el("span", {}, [h.dot(v[2]), h.verdictLabel(v[0])])); });
      body.appendChild(legend);
      body.appendChild(el("h3", {text: ui.by_city}));
      body.appendChild(bars(cities, max));
      body.appendChild(el("h3", {text: ui.by_industry}));
      body.appendChild(industryTable(d.industry));
      body.appendChild(el("h3", {text: ui.capacity}));
      if (!d.capacity) {
        body.appendChild(el("p", {cls: "bw-note", id: "bw-capacity", text: ui.capacity_unknown}));
      } else {
        Object.keys(d.capacity).forEach(function (col) {
          var rows = Object.keys(d.capacity[col]).map(function (v) {
            return el("tr", {}, [el("td", {}, [h.dot((cfg.verdicts.filter(function (x) { return x[0] === v; })[0] || [0, 0, "#ccc"])[2]),
                                               h.verdictLabel(v)]),
                                 el("td", {cls: "bw-num", text: d.capacity[col][v].toLocaleString()})]);
          });
          body.appendChild(el("table", {cls: "bw-counts", id: "bw-capacity"}, [
            el("caption", {text: h.pack.columns[col] || col}), el("tbody", {}, rows)]));
        });
      }
      bw.state.dashboard = d;
    }

    function refresh() {
      if (!open) { return Promise.resolve(); }
      if (ctl) { ctl.abort(); }
      ctl = new AbortController();
      body.textContent = ui.loading;
      var params = L.extend(h.filterParams(), h.areaParams());
      return h.getJSON(bw.cfg.api + "/map/dashboard?" + h.qs(params), ctl.signal).then(render)
        .catch(function (err) {
          if (err && err.name === "AbortError") { return; }
          body.textContent = ui.load_error + "：" + err.message;
        });
    }

    function toggle(want) {
      open = want === undefined ? !open : !!want;
      box.hidden = !open;
      document.getElementById("bw-app").classList.toggle("bw-with-dashboard", open);
      bw.map.invalidateSize();
      if (open) { refresh(); box.focus(); }
      return open;
    }

    return {toggle: toggle, refresh: refresh, element: box};
  }

  global.BasinWatchDashboard = {create: create};
})(window);
