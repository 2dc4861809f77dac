/* BasinWatch planners' web map (served by the BasinWatch API; no external requests).
 *
 * BasinWatchMap.init(element, config) builds the page:
 *  - enterprises as vector tiles (OGC API – Tiles, MVT; tiles.js) drawn on canvas, coloured
 *    by verdict, every enterprise at every zoom; clicks hit-test the decoded tiles;
 *  - reference layers from /map/layers/{id} in panes of fixed z-order
 *    (cities < districts < basins < region < parks < enterprises < drawn area), with labels;
 *  - a panel (search, filters, view count, area statistics and exports with progress,
 *    measuring, opacity, print) and a dashboard (dashboard.js);
 *  - the state (view, base, layers, filters, area, selected enterprise, language, opacity,
 *    dashboard) in the URL hash, so a link opens the same map.
 * No inline scripts or styles (a strict CSP holds): markup is built with the DOM, colours
 * set through CSSOM or classes from /map/theme.css. All text from the API goes through
 * textContent. Plug-ins register with BasinWatchMap.plugins (overlays, popup sections,
 * panel sections) before boot.js calls init. State for tests and benchmarks: window.bw.
 */
(function (global) {
  "use strict";

  // ------------------------------------------------------------------ plug-in registry
  var registry = {overlays: [], popupSections: [], panelSections: [], onInit: []};
  var plugins = {
    /* {id, title: {zh, en} | string, order, create(bw) -> L.Layer, legend(bw) -> Node} */
    overlay: function (spec) { registry.overlays.push(spec); },
    /* {id, order, render(props, bw) -> Node | null}: rows appended to enterprise popups */
    popupSection: function (spec) { registry.popupSections.push(spec); },
    /* {id, order, title (string, {zh, en} or fn(bw)), render(bw) -> Node}: a panel fieldset */
    panelSection: function (spec) { registry.panelSections.push(spec); },
    /* fn(bw): called once the map is ready */
    onInit: function (fn) { registry.onInit.push(fn); },
    registry: registry
  };

  // ------------------------------------------------------------------ small helpers
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) { return; }
      if (k === "text") { e.textContent = v; }
      else if (k === "cls") { e.className = v; }
      else if (k.slice(0, 2) === "on") { e.addEventListener(k.slice(2), v); }
      else { e.setAttribute(k, v === true ? "" : v); }
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) { return; }
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }

  function dot(colour) {
    var d = el("span", {cls: "bw-dot", "aria-hidden": "true"});
    d.style.background = colour;
    return d;
  }

  function esc(value) {
    if (value === null || value === undefined) { return ""; }
    return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  function qs(params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      var v = params[k];
      if (v === null || v === undefined || v === "") { return; }
      parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(v));
    });
    return parts.join("&");
  }

  function debounce(fn, ms) {
    var t = null;
    return function () {
      var args = arguments, self = this;
      clearTimeout(t);
      t = setTimeout(function () { fn.apply(self, args); }, ms);
    };
  }

  // ---- GCJ-02 (public forward formula, same constants as geo/crs.py) -----------------
  var GCJ_A = 6378245.0, GCJ_EE = 0.00669342162296594323, PI = Math.PI;
  function wgs2gcj(lon, lat) {
    if (lon < 72.004 || lon > 137.8347 || lat < 0.8293 || lat > 55.8271) { return [lon, lat]; }
    var x = lon - 105.0, y = lat - 35.0;
    var dLat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x)) +
      (20.0 * Math.sin(6.0 * x * PI) + 20.0 * Math.sin(2.0 * x * PI)) * 2.0 / 3.0 +
      (20.0 * Math.sin(y * PI) + 40.0 * Math.sin(y / 3.0 * PI)) * 2.0 / 3.0 +
      (160.0 * Math.sin(y / 12.0 * PI) + 320.0 * Math.sin(y * PI / 30.0)) * 2.0 / 3.0;
    var dLon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x)) +
      (20.0 * Math.sin(6.0 * x * PI) + 20.0 * Math.sin(2.0 * x * PI)) * 2.0 / 3.0 +
      (20.0 * Math.sin(x * PI) + 40.0 * Math.sin(x / 3.0 * PI)) * 2.0 / 3.0 +
      (150.0 * Math.sin(x / 12.0 * PI) + 300.0 * Math.sin(x / 30.0 * PI)) * 2.0 / 3.0;
    var radLat = lat / 180.0 * PI;
    var magic = 1.0 - GCJ_EE * Math.sin(radLat) * Math.sin(radLat);
    var sq = Math.sqrt(magic);
    dLat = (dLat * 180.0) / ((GCJ_A * (1.0 - GCJ_EE)) / (magic * sq) * PI);
    dLon = (dLon * 180.0) / (GCJ_A / sq * Math.cos(radLat) * PI);
    return [lon + dLon, lat + dLat];
  }

  /* Tiles drawn in GCJ-02 (Amap): chosen around GCJ(view centre) and the tile container
   * shifted by project(centre) - project(GCJ(centre)) (< 1 m error within a view). */
  var GcjTileLayer = L.TileLayer.extend({
    _getTiledPixelBounds: function (center) {
      var g = wgs2gcj(center.lng, center.lat);
      return L.TileLayer.prototype._getTiledPixelBounds.call(this, L.latLng(g[1], g[0]));
    },
    bwOffset: function () {
      var map = this._map, c = map.getCenter(), g = wgs2gcj(c.lng, c.lat);
      return map.project(c).subtract(map.project(L.latLng(g[1], g[0])));
    },
    _bwShift: function () {
      if (!this._map || !this._container) { return; }
      var o = this.bwOffset();
      this._container.style.left = Math.round(o.x) + "px";
      this._container.style.top = Math.round(o.y) + "px";
    },
    onAdd: function (map) {
      L.TileLayer.prototype.onAdd.call(this, map);
      map.on("zoomend moveend viewreset", this._bwShift, this);
      this._bwShift();
    },
    onRemove: function (map) {
      map.off("zoomend moveend viewreset", this._bwShift, this);
      L.TileLayer.prototype.onRemove.call(this, map);
    }
  });

  // ------------------------------------------------------------------ URL state
  var FILTER_KEYS = ["industry_id", "verdict", "needs_review", "basin_id", "region_id"];

  function parseHash(hash) {
    var out = {};
    String(hash || "").replace(/^#/, "").split("&").forEach(function (part) {
      if (!part) { return; }
      var i = part.indexOf("=");
      var k = decodeURIComponent(i < 0 ? part : part.slice(0, i));
      out[k] = i < 0 ? "" : decodeURIComponent(part.slice(i + 1).replace(/\+/g, " "));
    });
    return out;
  }

  // ------------------------------------------------------------------ init
  function init(element, cfg) {
    var url0 = parseHash(global.location.hash);
    var lang = url0.lang === "en" ? "en" : "zh";
    var pack = cfg.i18n[lang];
    var ui = pack.ui, api = cfg.api || "";
    document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
    document.title = ui.title;
    var phone = global.innerWidth < 700;
    var verdictIndex = {}, colours = [];
    cfg.verdicts.forEach(function (v, i) { verdictIndex[v[0]] = i; colours.push(v[2]); });
    function verdictLabel(id) { return pack.verdicts[id] || id; }
    function verdictColour(id) {
      var i = verdictIndex[id];
      return i === undefined ? "#cccccc" : colours[i];
    }

    var map = L.map(element, {minZoom: 5, maxZoom: 18, zoomControl: true, preferCanvas: false,
                              keyboard: true, tap: false});
    var bw = {
      map: map, cfg: cfg, lang: lang, ui: ui, esc: esc, wgs2gcj: wgs2gcj, plugins: plugins,
      state: {mode: "tiles", total: null, verdictCounts: null, requests: 0, lastMs: null,
              ready: false, pending: false, layersLoaded: {}, area: null, areaResult: null,
              selected: null, measure: null, notice: null, meta: null, export: null,
              countStale: false},
      timings: [], layers: {}, filters: {}, opacity: {}
    };
    global.bw = bw;
    var t0 = performance.now();
    element.setAttribute("tabindex", "0");
    element.setAttribute("aria-roledescription", "map");

    // panes of fixed z-order: a click reaches the top-most zone under it whatever the
    // load order; enterprise tiles let clicks through (hit-tested from decoded tiles)
    var PANES = {city: 402, district: 404, basin: 410, region: 412, park: 416,
                 bwLabels: 440, bwEnterprises: 450, bwArea: 460};
    Object.keys(PANES).forEach(function (name) {
      var pane = map.createPane("bw-pane-" + name);
      pane.style.zIndex = PANES[name];
    });
    map.getPane("bw-pane-bwEnterprises").classList.add("bw-pass-through");
    map.getPane("bw-pane-bwLabels").classList.add("bw-pass-through");
    // the dense base outlines (cities, districts) share one canvas (SVG with thousands of
    // vertices cost hundreds of ms of layout and paint per zoom); districts are kept drawn
    // over cities so a click there is a district. Basins, region and parks stay SVG in
    // their own panes: a click outside their paths falls through to the canvas below.
    var renderers = {};
    function rendererFor(kind) {
      var key = kind === "city" ? "district" : kind;
      if (!renderers[key]) {
        renderers[key] = key === "district" ? L.canvas({pane: "bw-pane-district", padding: 0.1})
          : L.svg({pane: "bw-pane-" + key, padding: 0.5});
      }
      return renderers[key];
    }
    function keepDistrictsOnTop() {
      var d = bw.layers.districts;
      if (d && d.bwLoaded === true && map.hasLayer(d)) { d.bringToFront(); }
    }

    // ---------------------------------------------------------------- fetch helpers
    function getJSON(url, signal) {
      var start = performance.now();
      bw.state.requests += 1;
      return fetch(url, {signal: signal, headers: {"Accept": "application/json"},
                         credentials: "same-origin"})
        .then(function (r) {
          if (!r.ok) {
            return r.json().catch(function () { return {}; }).then(function (b) {
              throw new Error((b && b.description) || ("HTTP " + r.status));
            });
          }
          return r.json();
        })
        .then(function (body) {
          bw.timings.push({url: url, ms: performance.now() - start});
          return body;
        });
    }

    function filterParams() {
      var p = {};
      FILTER_KEYS.forEach(function (k) {
        if (bw.filters[k] !== undefined && bw.filters[k] !== "") { p[k] = bw.filters[k]; }
      });
      return p;
    }

    function areaParams() {
      var a = bw.state.area, p = {};
      if (!a) { return p; }
      if (a.wkt) { p.within = a.wkt; } else if (!(a.key in p)) { p[a.key] = a.value; }
      return p;
    }

    // ---------------------------------------------------------------- URL state
    var restoring = true;
    function stateHash() {
      var c = map.getCenter(), z = map.getZoom();
      var h = {v: z + "/" + c.lat.toFixed(5) + "/" + c.lng.toFixed(5), b: bw.state.base || "offline"};
      var shown = [];
      Object.keys(bw.layers).forEach(function (id) {
        if (id.indexOf("base_") === 0 || id === "offline") { return; }
        if (map.hasLayer(bw.layers[id])) { shown.push(id); }
      });
      h.l = shown.join(",");
      FILTER_KEYS.forEach(function (k) { if (bw.filters[k]) { h[k] = bw.filters[k]; } });
      var a = bw.state.area;
      if (a) { h.area = a.wkt ? a.wkt : a.key + ":" + a.value; }
      if (bw.state.selected) { h.sel = bw.state.selected; }
      if (lang === "en") { h.lang = "en"; }
      var op = Object.keys(bw.opacity).filter(function (k) { return bw.opacity[k] !== 1; })
        .map(function (k) { return k + ":" + bw.opacity[k]; });
      if (op.length) { h.op = op.join(","); }
      if (bw.state.dash) { h.dash = "1"; }
      return "#" + Object.keys(h).map(function (k) {
        return encodeURIComponent(k) + "=" + encodeURIComponent(h[k]).replace(/%2C/g, ",")
          .replace(/%2F/g, "/").replace(/%3A/g, ":");
      }).join("&");
    }
    function saveState() {
      if (restoring) { return; }
      var h = stateHash();
      if (h !== global.location.hash) {
        global.history.replaceState(null, "", global.location.pathname + global.location.search + h);
      }
    }
    bw.stateHash = stateHash;
    bw.saveState = saveState;

    // ---------------------------------------------------------------- notices
    var noticeBox = el("div", {cls: "bw-notice", role: "alert", hidden: true});
    element.parentNode.appendChild(noticeBox);
    function notice(text) {
      bw.state.notice = text;
      noticeBox.textContent = text;
      noticeBox.hidden = !text;
      if (text) { setTimeout(function () { if (bw.state.notice === text) { notice(""); } }, 9000); }
    }
    bw.notice = notice;

    // ---------------------------------------------------------------- reference layers
    var labelLayer = L.layerGroup().addTo(map);
    var labels = [];  // {marker, kind, priority, layer}

    function zoneOf(kind, id, props) {
      if (kind === "basin") { return {key: "basin_id", value: id}; }
      if (kind === "region") { return {key: "region_id", value: id}; }
      if (kind === "park") { return {key: "park_id", value: props.id}; }
      if (kind === "district") { return {key: "district_code", value: props.code}; }
      if (kind === "city") { return {key: "city", value: props.name_zh}; }
      return null;
    }

    var zoneHit = null;  // the top-most zone under the last click (set by its path)
    function referenceLayer(info) {
      var title = pack.layers[info.id] || info.title;
      var group = L.geoJSON(null, {
        pane: info.kind === "city" ? "bw-pane-district" : "bw-pane-" + info.kind,
        renderer: rendererFor(info.kind),
        style: function () {
          var s = L.extend({}, info.style);
          s.className = "bw-ref bw-ref-" + info.kind + " bw-layer-" + info.id;
          if (info.kind === "city" || info.kind === "district") { s.smoothFactor = 2; }
          s.opacity = (s.opacity === undefined ? 1 : s.opacity) * (bw.opacity[info.id] || 1);
          return s;
        },
        onEachFeature: function (feature, layer) {
          var props = feature.properties || {};
          var label = props.name_zh || props.id || props.code || "";
          layer.bwBase = {weight: info.style.weight};
          layer.on("click", function () {
            if (!zoneHit) { zoneHit = {info: info, props: props, label: label, title: title}; }
          });
        }
      });
      group.bwInfo = info;
      group.bwTitle = title;
      group.on("add", function () {
        if (group.bwLoaded) { return; }
        group.bwLoaded = "loading";
        getJSON(api + "/map/layers/" + encodeURIComponent(info.id) +
                (info.simplify !== undefined ? "?simplify=" + info.simplify : ""))
          .then(function (fc) {
            group.addData(fc);
            group.bwLoaded = true;
            bw.state.layersLoaded[info.id] = fc.features.length;
            if (info.kind === "district") { fillZonePicker(fc.features); }
            addLabels(info, fc.features, group);
            keepDistrictsOnTop();
            if (bw.state.area && !bw.state.area.wkt) { showAreaShape(); }
          })
          .catch(function (err) { group.bwLoaded = false; showError(title, err); });
      });
      group.on("add remove", function () { keepDistrictsOnTop(); placeLabels(); saveState(); });
      bw.layers[info.id] = group;
      return group;
    }

    function addLabels(info, features, group) {
      var minZoom = cfg.label_zoom[info.kind];
      if (minZoom === undefined) { return; }
      var prio = {basin: 0, region: 1, city: 2, park: 3, district: 4}[info.kind];
      features.forEach(function (f) {
        var p = f.properties || {};
        if (!p.label_at) { return; }
        var text = info.kind === "basin" || info.kind === "region" ?
          (pack.zones[info.id] || pack.layers[info.id] || p.name_zh) : (p.name_zh || p.id || "");
        var icon = L.divIcon({className: "bw-label bw-label-" + info.kind, html: esc(text),
                              iconSize: null});
        var m = L.marker(p.label_at, {icon: icon, pane: "bw-pane-bwLabels", interactive: false,
                                       keyboard: false});
        labels.push({marker: m, kind: info.kind, prio: prio, minZoom: minZoom, group: group});
      });
      placeLabels();
    }

    /* Show labels whose layer is on and zoom reached; greedy: higher priority first, a label
     * overlapping one already placed is hidden. Writes, then one batch of reads (one
     * layout), then writes again: no layout per label. */
    function placeLabels() {
      var z = map.getZoom(), view = map.getBounds().pad(0.1), placed = [], active = [];
      labels.forEach(function (lab) {
        var on = z >= lab.minZoom && map.hasLayer(lab.group) &&
          view.contains(lab.marker.getLatLng());
        if (on) {
          if (!labelLayer.hasLayer(lab.marker)) { labelLayer.addLayer(lab.marker); }
          active.push(lab);
        } else if (labelLayer.hasLayer(lab.marker)) {
          labelLayer.removeLayer(lab.marker);
        }
      });
      active.sort(function (a, b) { return a.prio - b.prio; });
      var nodes = active.map(function (lab) { return lab.marker.getElement(); });
      nodes.forEach(function (node) { if (node) { node.classList.remove("bw-label-hidden"); } });
      var rects = nodes.map(function (node) { return node ? node.getBoundingClientRect() : null; });
      var hide = rects.map(function (r) {
        if (!r) { return false; }
        var clash = placed.some(function (q) {
          return !(r.right < q.left || r.left > q.right || r.bottom < q.top || r.top > q.bottom);
        });
        if (!clash) { placed.push(r); }
        return clash;
      });
      nodes.forEach(function (node, i) { if (node && hide[i]) { node.classList.add("bw-label-hidden"); } });
      bw.state.labelsShown = placed.length;
    }
    // labels are placed after a move settles (moveend, debounced): no forced layout mid-zoom
    bw.placeLabels = placeLabels;

    // ---------------------------------------------------------------- enterprises
    var tiles = global.BasinWatchTiles.layer({
      api: api, pane: "bw-pane-bwEnterprises", verdictIndex: verdictIndex, colours: colours
    }).hold();  // first tiles wait for the data version (versioned, cacheable URLs)
    var metaTimer = setTimeout(function () { tiles.release(tileQuery()); }, 3000);
    getJSON(api + "/map/meta").then(function (m) {
      bw.state.meta = m;
    }).catch(function () { /* the map works without the version stamp */ })
      .then(function () { clearTimeout(metaTimer); tiles.release(tileQuery()); });
    bw.layers.enterprises = tiles;
    tiles.on("loading", function () { bw.state.pending = true; });
    tiles.on("load", function () {
      bw.state.pending = false;
      if (bw.state.viewStart !== null && bw.state.viewStart !== undefined) {
        var start = bw.state.viewStart;
        bw.state.lastMs = performance.now() - start;
        bw.state.viewStart = null;
        // draw-done: the frame showing every tile has been produced (canvas rasterised)
        bw.state.paintedMs = null;
        requestAnimationFrame(function () {
          setTimeout(function () { bw.state.paintedMs = performance.now() - start; }, 0);
        });
      }
      bw.state.shown = tiles.drawnFeatures();
      if (!bw.state.ready) {
        bw.state.ready = true;
        bw.state.firstRenderMs = performance.now() - t0;
        bw.state.readyAt = performance.now();
      }
    });
    tiles.on("bwtileerror", function (e) { showError(ui.enterprises, e.error); });
    map.on("movestart zoomstart viewreset", function () {
      if (bw.state.viewStart === null || bw.state.viewStart === undefined) {
        bw.state.viewStart = performance.now();
      }
    });

    function tileQuery() {
      var p = filterParams();
      if (bw.state.meta && bw.state.meta.version) { p.v = bw.state.meta.version; }
      return qs(p);
    }

    var countCtl = null;
    function refreshCount() {
      if (!map.hasLayer(tiles)) {
        bw.state.total = null;
        bw.state.verdictCounts = null;
        renderCount();
        return Promise.resolve();
      }
      if (countCtl) { countCtl.abort(); }
      countCtl = new AbortController();
      var b = map.getBounds();
      var params = filterParams();
      params.bbox = [Math.max(b.getWest(), -180), Math.max(b.getSouth(), -90),
                     Math.min(b.getEast(), 180), Math.min(b.getNorth(), 90)]
        .map(function (n) { return n.toFixed(5); }).join(",");
      bw.state.countStale = true;
      renderCount();
      return getJSON(api + "/map/count?" + qs(params), countCtl.signal).then(function (body) {
        bw.state.total = body.total;
        bw.state.verdictCounts = body.verdict;
        bw.state.countStale = false;
        renderCount();
      }).catch(function (err) {
        if (err && err.name === "AbortError") { return; }
        showError(ui.in_view, err);
      });
    }
    bw.refreshCount = refreshCount;

    function refresh() {
      tiles.setParams(tileQuery());
      return refreshCount();
    }
    bw.refresh = refresh;

    // ---------------------------------------------------------------- popups
    function labelled(field, value, props) {
      if (field === "verdict") {
        return el("span", {}, [dot(verdictColour(value)), verdictLabel(value)]);
      }
      if (field === "basin_id" || field === "region_id") {
        return document.createTextNode(pack.zones[value] || value);
      }
      if (field === "industry") {
        return document.createTextNode(pack.industry_names[value] || value);
      }
      if (field === "geocode_precision") {
        return document.createTextNode((pack.precision[value] || value) +
          (props.geocode_unit ? "（" + props.geocode_unit + "）" : ""));
      }
      if (field === "needs_review") {
        var yes = value === true || value === "true";
        var box = el("span", {text: yes ? ui.yes : ui.no});
        if (yes && props.review_reasons) {
          box.appendChild(el("div", {cls: "bw-note", text: ui.review_reasons + "：" +
            String(props.review_reasons).split(";").filter(function (c) { return c; })
              .map(function (c) { return pack.review_reasons[c] || c; }).join("；")}));
        }
        return box;
      }
      if (field === "reasons") {
        var parts = String(value || "").split("；").filter(function (s) { return s.trim(); });
        return el("ul", {}, parts.map(function (s) { return el("li", {text: s}); }));
      }
      if (field === "standards") { return document.createTextNode(String(value || "").split(";").join("；")); }
      if (field === "deadline_status") {
        return document.createTextNode(String((pack.deadline_status || {})[value] || value));
      }
      if (field === "price_measures") {
        return document.createTextNode(String(value || "").split(";").filter(function (c) { return c; })
          .map(function (c) { return (pack.price_measures || {})[c] || c; }).join("；"));
      }
      return document.createTextNode(String(value));
    }

    function metaText() {
      var m = bw.state.meta;
      if (!m || m.load_id === null) { return ""; }
      return ui.data_version_fmt.replace("{id}", m.load_id)
        .replace("{date}", String(m.loaded_at || "").slice(0, 10))
        .replace("{source}", m.source_name || "");
    }

    function popupNode(props) {
      var rows = cfg.popup_fields.map(function (f) {
        var v = props[f];
        if ((v === "" || v === null || v === undefined) && f !== "needs_review") { return null; }
        return el("tr", {}, [el("th", {scope: "row", text: pack.columns[f] || f}),
                             el("td", {}, [labelled(f, v, props)])]);
      });
      rows.push(el("tr", {cls: "bw-meta-row"}, [el("th", {scope: "row", text: ui.data_version}),
                                                el("td", {text: metaText()})]));
      var table = el("table", {cls: "bw-popup", "data-fid": props.fid}, [el("tbody", {}, rows)]);
      var box = el("div", {}, [table]);
      registry.popupSections.slice().sort(function (a, b) { return (a.order || 0) - (b.order || 0); })
        .forEach(function (sec) {
          try {
            var node = sec.render(props, bw);
            if (node) { box.appendChild(node); }
          } catch (e) { showError(sec.id, e); }
        });
      return box;
    }

    function openEnterprise(fid, latlng) {
      bw.state.selected = fid;
      saveState();
      if (!latlng) {  // from the URL: find the enterprise first
        return getJSON(api + "/collections/enterprises/items/" + encodeURIComponent(fid))
          .then(function (feat) {
            var c = (feat.geometry || {}).coordinates;
            if (c) { return openEnterprise(fid, L.latLng(c[1], c[0])); }
          }).catch(function (err) { showError(ui.enterprises, err); });
      }
      var popup = L.popup({maxWidth: phone ? 250 : 440, className: "bw-enterprise-popup",
                           autoPanPaddingTopLeft: phone ? [86, 70] : [330, 10]})
        .setLatLng(latlng).setContent(el("span", {text: ui.loading})).openOn(map);
      return getJSON(api + "/collections/enterprises/items/" + encodeURIComponent(fid))
        .then(function (feat) {
          popup.setContent(popupNode(L.extend({fid: fid}, feat.properties || {})));
        })
        .catch(function (err) { popup.setContent(el("span", {text: ui.load_error + "：" + err.message})); });
    }
    bw.openEnterprise = openEnterprise;
    map.on("popupclose", function (e) {
      if (e.popup.options.className === "bw-enterprise-popup") { bw.state.selected = null; saveState(); }
    });

    function openMany(hits, latlng) {
      var n = hits.reduce(function (s, h) { return s + h.n; }, 0);
      if (map.getZoom() < 16) {
        map.setView(latlng, Math.min(map.getZoom() + 3, 18));
        return;
      }
      var d = 12 * 360 / (256 * Math.pow(2, map.getZoom()));
      var wkt = "POLYGON((" + [[-d, -d], [d, -d], [d, d], [-d, d], [-d, -d]].map(function (o) {
        return (latlng.lng + o[0]).toFixed(6) + " " + (latlng.lat + o[1]).toFixed(6);
      }).join(",") + "))";
      var popup = L.popup({maxWidth: 420, className: "bw-many-popup"}).setLatLng(latlng)
        .setContent(el("span", {text: ui.loading})).openOn(map);
      getJSON(api + "/map/area?" + qs(L.extend(filterParams(), {within: wkt}))).then(function (body) {
        var list = el("ol", {cls: "bw-area-list"}, body.rows.map(function (r) {
          return el("li", {}, [el("a", {href: "#", onclick: function (ev) {
            ev.preventDefault();
            openEnterprise(r[0], L.latLng(r[5], r[6]));
          }}, [dot(verdictColour(r[4])), r[1]])]);
        }));
        popup.setContent(el("div", {}, [el("b", {text: ui.many_here.replace("{n}", body.total || n)}), list]));
      });
    }

    // one click handler decides: tools first, then an enterprise, then the top-most zone
    map.on("click", function (e) {
      var zone = zoneHit;
      zoneHit = null;
      if (tools.active()) { return; }
      var target = e.originalEvent && e.originalEvent.target;
      if (!zone && target && target.classList && target.classList.contains("leaflet-interactive")) {
        return;  // a plug-in's feature took the click (it opens its own popup)
      }
      if (map.hasLayer(tiles)) {
        var hits = tiles.hit(e.latlng, phone ? 14 : 8);
        if (hits.length) {
          var top = hits[0];
          if (top.n === 1 && top.id) { openEnterprise(top.id, top.latlng); }
          else { openMany(hits.filter(function (h) { return h.d === top.d; }), top.latlng); }
          return;
        }
      }
      if (zone) { zonePopup(zone, e.latlng); }
    });

    function zonePopup(hit, latlng) {
      var z = zoneOf(hit.info.kind, hit.info.id, hit.props);
      var name = hit.info.kind === "basin" || hit.info.kind === "region" ?
        (pack.zones[hit.info.id] || hit.title) : hit.label;
      var box = el("div", {cls: "bw-zone-popup"}, [el("b", {text: hit.title +
        (name && name !== hit.title ? "：" + name : "")})]);
      if (z && z.value) {
        box.appendChild(el("br"));
        box.appendChild(el("button", {type: "button", cls: "bw-btn", text: ui.stat_this,
          onclick: function () {
            map.closePopup();
            setArea({key: z.key, value: z.value, label: name || hit.title}, true);
          }}));
      }
      if (hit.info.kind === "district" && hit.props.city_zh) {  // the city under it too
        box.appendChild(el("br"));
        box.appendChild(el("button", {type: "button", cls: "bw-btn bw-city-stat",
          text: ui.stat_this + "（" + hit.props.city_zh + "）", onclick: function () {
            map.closePopup();
            setArea({key: "city", value: hit.props.city_zh, label: hit.props.city_zh}, true);
          }}));
      }
      L.popup({className: "bw-zone-popup-wrap"}).setLatLng(latlng).setContent(box).openOn(map);
    }

    // ---------------------------------------------------------------- density overlay
    var densityLayer = L.layerGroup();
    bw.layers.density = densityLayer;
    function loadDensity() {
      if (!map.hasLayer(densityLayer)) { return; }
      getJSON(api + "/map/density?" + qs(L.extend(filterParams(), areaParams()))).then(function (body) {
        densityLayer.clearLayers();
        if (body.image) {
          densityLayer.addLayer(L.imageOverlay(body.image, body.bounds,
            {opacity: 0.75 * (bw.opacity.density || 1), className: "bw-density",
             interactive: false}));
        }
        bw.state.density = body.total;
      }).catch(function (err) { showError(ui.density, err); });
    }
    densityLayer.on("add", loadDensity);

    // ---------------------------------------------------------------- base layers
    var offline = L.layerGroup();
    bw.layers.offline = offline;
    var baseLayers = {};
    baseLayers[esc(ui.offline_base)] = offline;
    cfg.base_reference.forEach(function (info) { offline.addLayer(referenceLayer(info)); });
    cfg.base_layers.forEach(function (b) {
      var opts = {maxZoom: 18, maxNativeZoom: b.max_zoom || 18, attribution: b.attribution,
                  subdomains: b.subdomains || "abc", tk: b.token || ""};
      var inner = [b.crs === "GCJ02" ? new GcjTileLayer(b.url, opts) : L.tileLayer(b.url, opts)];
      if (b.label_url) {
        inner.push(b.crs === "GCJ02" ? new GcjTileLayer(b.label_url, opts) :
          L.tileLayer(b.label_url, opts));
      }
      // an empty group until one probe tile loaded: offline, no screen of failing tiles
      var layer = L.layerGroup();
      layer.bwInner = inner;
      layer.bwBase = b;
      bw.layers["base_" + b.id] = layer;
      baseLayers[esc(b.title)] = layer;
    });
    bw.GcjTileLayer = GcjTileLayer;
    offline.bwBaseId = "offline";

    /* Online base maps: probe one tile first; if it cannot load (offline), say so and go
     * back to the offline base instead of leaving a blank map and dozens of failed tiles. */
    function probeOnline(layer) {
      var b = layer.bwBase;
      var c = map.getCenter(), z = Math.min(map.getZoom(), b.max_zoom || 18);
      var n = Math.pow(2, z), x = Math.floor((c.lng + 180) / 360 * n);
      var y = Math.floor((1 - Math.log(Math.tan(c.lat * PI / 180) + 1 / Math.cos(c.lat * PI / 180)) / PI) / 2 * n);
      var url = L.Util.template(b.url, {s: (b.subdomains || "a").charAt(0), x: x, y: y, z: z,
                                        tk: b.token || ""});
      return new Promise(function (resolve) {
        var img = new Image(), done = false;
        var timer = setTimeout(function () { finish(false); }, 5000);
        function finish(ok) { if (done) { return; } done = true; clearTimeout(timer); resolve(ok); }
        img.onload = function () { finish(true); };
        img.onerror = function () { finish(false); };
        img.referrerPolicy = "no-referrer";
        img.src = url;
      });
    }

    map.on("baselayerchange", function (e) {
      var layer = e.layer;
      Object.keys(bw.layers).forEach(function (k) {  // a base left: drop its tiles again
        var other = bw.layers[k];
        if (other.bwInner && other !== layer) { other.clearLayers(); }
      });
      bw.state.base = layer.bwBase ? layer.bwBase.id : "offline";
      saveState();
      if (!layer.bwBase) { return; }
      bw.state.probing = true;
      probeOnline(layer).then(function (ok) {
        bw.state.probing = false;
        if (!map.hasLayer(layer)) { return; }
        if (ok) {
          layer.bwInner.forEach(function (t) { if (!layer.hasLayer(t)) { layer.addLayer(t); } });
          return;
        }
        map.removeLayer(layer);
        map.addLayer(offline);
        bw.state.base = "offline";
        layerControl._update();
        notice(ui.online_failed);
        saveState();
      });
    });

    // ---------------------------------------------------------------- overlays
    var overlays = {};
    function swatch(info) {
      return '<span class="bw-swatch bw-swatch-' + esc(info.id) + '" aria-hidden="true"></span>';
    }
    cfg.overlays.forEach(function (info) {
      var g = referenceLayer(info);
      overlays[swatch(info) + esc(g.bwTitle)] = g;
    });
    overlays['<span class="bw-swatch bw-swatch-enterprises" aria-hidden="true"></span>' +
             esc(ui.enterprises)] = tiles;
    overlays[esc(ui.density)] = densityLayer;
    registry.overlays.slice().sort(function (a, b) { return (a.order || 0) - (b.order || 0); })
      .forEach(function (spec) {
        var layer = spec.create(bw);
        var title = typeof spec.title === "string" ? spec.title : (spec.title[lang] || spec.title.zh);
        bw.layers[spec.id] = layer;
        overlays[esc(title)] = layer;
      });
    var layerControl = L.control.layers(baseLayers, overlays,
      {collapsed: phone, position: "topright"}).addTo(map);
    bw.layerControl = layerControl;
    tiles.on("add", function () { refresh(); saveState(); });
    tiles.on("remove", function () { refreshCount(); saveState(); });
    densityLayer.on("add remove", saveState);
    L.control.scale({imperial: false, position: "bottomleft"}).addTo(map);

    // ---------------------------------------------------------------- legend
    var legend = L.control({position: "bottomright"});
    var legendBox;
    legend.onAdd = function () {
      legendBox = L.DomUtil.create("div", "bw-legend" + (phone ? " bw-legend-collapsed" : ""));
      legendBox.id = "bw-legend";
      var toggle = el("button", {type: "button", cls: "bw-btn bw-legend-toggle", text: ui.legend_toggle,
        "aria-expanded": phone ? "false" : "true", "aria-controls": "bw-legend-body",
        onclick: function () {
          var c = legendBox.classList.toggle("bw-legend-collapsed");
          toggle.setAttribute("aria-expanded", c ? "false" : "true");
        }});
      var body = el("div", {cls: "bw-legend-body", id: "bw-legend-body"});
      body.appendChild(el("b", {text: pack.words.legend_title && lang === "zh" ?
        pack.words.legend_title : ui.verdict}));
      cfg.verdicts.forEach(function (v) {
        body.appendChild(el("div", {}, [dot(v[2]), verdictLabel(v[0])]));
      });
      body.appendChild(el("div", {cls: "bw-note", text: ui.legend_size}));
      body.appendChild(el("b", {text: ui.legend_layers}));
      cfg.overlays.forEach(function (info) {
        var sw = el("span", {cls: "bw-swatch bw-swatch-" + info.id, "aria-hidden": "true"});
        body.appendChild(el("div", {}, [sw, pack.layers[info.id] || info.title]));
      });
      var ramp = el("span", {cls: "bw-ramp", "aria-hidden": "true"});
      ramp.style.background = "linear-gradient(to right," + cfg.density_colors.join(",") + ")";
      body.appendChild(el("div", {}, [ramp, ui.legend_density]));
      legendBox.appendChild(toggle);
      legendBox.appendChild(body);
      L.DomEvent.disableClickPropagation(legendBox);
      return legendBox;
    };
    legend.addTo(map);

    // ---------------------------------------------------------------- drawing tools
    var tools = global.BasinWatchTools.create(map, {
      pane: "bw-pane-bwArea", lang: lang,
      onArea: function (latlngs) {
        var ring = latlngs.map(function (p) { return p.lng.toFixed(5) + " " + p.lat.toFixed(5); });
        ring.push(ring[0]);
        setArea({wkt: "POLYGON((" + ring.join(",") + "))", label: ui.drawn_area}, false);
      },
      onMeasure: function (m) {
        bw.state.measure = m;
        if (measureBox) { measureBox.textContent = m.text; }
      },
      onMode: function (kind) {
        bw.state.tool = kind;
        bw.drawing = !!kind;
        Array.prototype.forEach.call(document.querySelectorAll("[data-tool]"), function (b) {
          b.setAttribute("aria-pressed", b.getAttribute("data-tool") === kind ? "true" : "false");
        });
      },
      onCancel: function () { if (!bw.state.area) { showAreaShape(); } }
    });
    bw.tools = tools;

    // ---------------------------------------------------------------- panel
    var panel = el("aside", {id: "bw-panel", cls: "bw-panel", "aria-label": ui.panel_title,
                             tabindex: "-1"});
    var countBox, areaBox, zonePicker, searchList, measureBox, exportBox, searchInput;
    var panelBody = el("div", {cls: "bw-panel-body", id: "bw-panel-body"});
    var toggleBtn = el("button", {type: "button", cls: "bw-btn bw-toggle", id: "bw-panel-toggle",
      "aria-controls": "bw-panel-body", "aria-expanded": "true", text: ui.panel_toggle,
      "aria-label": ui.close_panel, onclick: function () { setPanelOpen(panel.classList.contains("bw-collapsed")); }});
    function setPanelOpen(open) {
      panel.classList.toggle("bw-collapsed", !open);
      toggleBtn.setAttribute("aria-expanded", open ? "true" : "false");
      toggleBtn.setAttribute("aria-label", open ? ui.close_panel : ui.open_panel);
    }
    bw.setPanelOpen = setPanelOpen;
    var langBtn = el("button", {type: "button", cls: "bw-btn", id: "bw-lang", lang: lang === "zh" ? "en" : "zh",
      text: ui.lang_toggle, "aria-label": ui.lang_toggle_label, onclick: function () {
        lang = lang === "zh" ? "en" : "zh";
        restoring = false;
        var h = stateHash();
        global.location.hash = h;
        global.location.reload();
      }});
    var dashBtn = el("button", {type: "button", cls: "bw-btn", id: "bw-dash-toggle",
      text: ui.dashboard, "aria-expanded": "false", "aria-controls": "bw-dashboard",
      onclick: function () { bw.toggleDashboard(); }});
    panel.appendChild(el("div", {cls: "bw-panel-head"}, [
      el("h1", {cls: "bw-title", text: ui.panel_title}), el("span", {cls: "bw-head-buttons"},
        [langBtn, dashBtn, toggleBtn])]));
    panel.appendChild(panelBody);

    function section(title, cls, children) {
      var fs = el("fieldset", {cls: "bw-section " + (cls || "")}, [el("legend", {text: title})]);
      children.forEach(function (c) { if (c) { fs.appendChild(c); } });
      panelBody.appendChild(fs);
      return fs;
    }

    // search
    searchInput = el("input", {type: "search", cls: "bw-search", id: "bw-search",
      placeholder: ui.search_placeholder, "aria-label": ui.search, autocomplete: "off"});
    searchList = el("div", {cls: "bw-search-results", id: "bw-search-results", role: "list",
                            "aria-live": "polite"});
    searchInput.addEventListener("input", debounce(function () { runSearch(searchInput.value); }, 250));
    panelBody.appendChild(searchInput);
    panelBody.appendChild(searchList);

    // filters
    function select(id, label, options, key) {
      var s = el("select", {id: id, "aria-label": label}, options.map(function (o) {
        return el("option", {value: o[0], text: o[1]});
      }));
      s.addEventListener("change", function () { setFilter(key, s.value); });
      panelBody.appendChild(el("label", {cls: "bw-field", "for": id}, [el("span", {text: label}), s]));
      return s;
    }
    var industrySel = select("bw-industry", ui.industry, [["", ui.all]].concat(cfg.industries.map(function (i) {
      return [i[0], pack.industries[i[0]] || i[1]];
    })), "industry_id");
    var zoneSel = select("bw-zone", ui.zone, [["", ui.all]].concat(cfg.zones.map(function (z) {
      return [z[0] + "=" + z[1], pack.zones[z[1]] || z[2]];
    })), "zone");
    var reviewSel = select("bw-review", ui.review, [["", ui.all], ["true", ui.yes], ["false", ui.no]],
                           "needs_review");
    var vbox = el("fieldset", {cls: "bw-verdicts"}, [el("legend", {text: ui.verdict})]);
    cfg.verdicts.forEach(function (v) {
      var cb = el("input", {type: "checkbox", value: v[0], cls: "bw-verdict", id: "bw-verdict-" + v[0],
                            checked: true});
      cb.addEventListener("change", function () {
        var on = Array.prototype.filter.call(vbox.querySelectorAll("input"),
          function (c) { return c.checked; }).map(function (c) { return c.value; });
        setFilter("verdict", on.length === cfg.verdicts.length ? "" : (on.length ? on.join(",") : "__none__"));
      });
      vbox.appendChild(el("label", {cls: "bw-check", "for": "bw-verdict-" + v[0]},
                          [cb, dot(v[2]), verdictLabel(v[0])]));
    });
    panelBody.appendChild(vbox);
    countBox = el("div", {cls: "bw-count", id: "bw-count", "aria-live": "polite"});
    panelBody.appendChild(countBox);

    function renderCount() {
      countBox.textContent = "";
      if (!map.hasLayer(tiles)) {
        countBox.appendChild(el("span", {cls: "bw-note", text: ui.in_view + "：" + ui.layers_hidden}));
        return;
      }
      var total = bw.state.total;
      countBox.appendChild(document.createTextNode(ui.in_view + "："));
      countBox.appendChild(el("b", {id: "bw-count-total", text: total === null || bw.state.countStale ? "…" :
        total.toLocaleString(lang === "en" ? "en" : "zh-CN")}));
      var vc = bw.state.verdictCounts;
      if (vc && !bw.state.countStale) {
        var row = el("div", {cls: "bw-count-mix"});
        cfg.verdicts.forEach(function (v) {
          if (vc[v[0]]) { row.appendChild(el("span", {title: verdictLabel(v[0])}, [dot(v[2]), String(vc[v[0]])])); }
        });
        countBox.appendChild(row);
      }
      countBox.appendChild(el("div", {cls: "bw-note", text: ui.symbol_note}));
    }

    // area tools
    function toolButton(id, text, tool, handler) {
      return el("button", {type: "button", cls: "bw-btn", id: id, text: text,
                           "data-tool": tool || null, "aria-pressed": tool ? "false" : null,
                           onclick: handler});
    }
    zonePicker = el("select", {id: "bw-zone-pick", "aria-label": ui.pick_zone},
                    [el("option", {value: "", text: ui.pick_zone})]);
    cfg.zones.forEach(function (z) {
      zonePicker.appendChild(el("option", {value: z[0] + "=" + z[1], text: pack.zones[z[1]] || z[2]}));
    });
    zonePicker.addEventListener("change", function () {
      if (!zonePicker.value) { return; }
      var kv = zonePicker.value.split("=");
      setArea({key: kv[0], value: kv.slice(1).join("="),
               label: zonePicker.options[zonePicker.selectedIndex].text}, true);
    });
    areaBox = el("div", {cls: "bw-area", id: "bw-area", "aria-live": "polite"});
    section(ui.area, "bw-area-tools", [
      toolButton("bw-draw-rect", ui.draw_rect, "rect", function () { tools.start("rect"); }),
      toolButton("bw-draw-poly", ui.draw_polygon, "polygon", function () { tools.start("polygon"); }),
      toolButton("bw-finish-poly", ui.finish_polygon, null, function () { tools.finish(); }),
      toolButton("bw-clear-area", ui.clear_area, null, function () { tools.clear(); setArea(null); }),
      el("div", {cls: "bw-note", text: ui.draw_hint}),
      zonePicker,
      el("div", {cls: "bw-note", text: ui.pick_zone_hint}),
      areaBox
    ]);

    // measuring
    measureBox = el("div", {cls: "bw-measure", id: "bw-measure", "aria-live": "polite"});
    section(ui.measure, "bw-measure-tools", [
      toolButton("bw-measure-line", ui.measure_line, "measure-line", function () { tools.start("measure-line"); }),
      toolButton("bw-measure-area", ui.measure_area, "measure-area", function () { tools.start("measure-area"); }),
      toolButton("bw-measure-finish", ui.measure_finish, null, function () { tools.finish(); }),
      el("div", {cls: "bw-note", text: ui.measure_hint}),
      measureBox
    ]);

    // opacity
    function slider(id, title) {
      var input = el("input", {type: "range", min: "0.1", max: "1", step: "0.1", value: String(bw.opacity[id] || 1),
                               id: "bw-opacity-" + id, "aria-label": ui.opacity + "：" + title});
      input.addEventListener("input", function () { setOpacity(id, +input.value); });
      return el("label", {cls: "bw-field bw-opacity", "for": "bw-opacity-" + id}, [el("span", {text: title}), input]);
    }
    section(ui.opacity, "bw-opacity-tools", [slider("enterprises", ui.enterprises),
      slider("basins", pack.words.basin || ui.zone), slider("parks", pack.layers.parks || "parks"),
      slider("density", ui.density)]);

    function setOpacity(id, value) {
      bw.opacity[id] = value;
      if (id === "enterprises") { tiles.setOpacity(value); }
      else if (id === "density") {
        densityLayer.eachLayer(function (l) { l.setOpacity(0.75 * value); });
      } else {
        var ids = id === "basins" ? cfg.overlays.filter(function (o) { return o.kind === "basin" || o.kind === "region"; })
          .map(function (o) { return o.id; }) : [id];
        ids.forEach(function (lid) {
          var info = cfg.overlays.filter(function (o) { return o.id === lid; })[0];
          if (!info || !bw.layers[lid]) { return; }
          bw.layers[lid].setStyle({opacity: (info.style.opacity === undefined ? 1 : info.style.opacity) * value,
                                   fillOpacity: (info.style.fillOpacity || 0) * value});
        });
      }
      saveState();
    }
    bw.setOpacity = setOpacity;

    // print
    var paperSel = el("select", {id: "bw-print-paper", "aria-label": ui.print_paper},
      ["A4", "A3"].map(function (p) { return el("option", {value: p, text: p + (lang === "en" ? " landscape" : " 横向")}); }));
    var formatSel = el("select", {id: "bw-print-format", "aria-label": ui.print_format},
      ["pdf", "png"].map(function (f) { return el("option", {value: f, text: f.toUpperCase()}); }));
    var headingInput = el("input", {type: "text", id: "bw-print-title", "aria-label": ui.print_heading,
                                    value: ui.print_default_heading});
    var printLink = el("a", {id: "bw-print", cls: "bw-btn bw-btn-link", role: "button", href: "#", text: ui.print_button});
    printLink.addEventListener("click", function () { printLink.href = printUrl(); });
    printLink.addEventListener("focus", function () { printLink.href = printUrl(); });
    printLink.addEventListener("mouseenter", function () { printLink.href = printUrl(); });
    section(ui.print_title, "bw-print-tools", [
      el("label", {cls: "bw-field", "for": "bw-print-paper"}, [el("span", {text: ui.print_paper}), paperSel]),
      el("label", {cls: "bw-field", "for": "bw-print-format"}, [el("span", {text: ui.print_format}), formatSel]),
      el("label", {cls: "bw-field", "for": "bw-print-title"}, [el("span", {text: ui.print_heading}), headingInput]),
      printLink]);

    function printUrl() {
      var b = map.getBounds();
      var p = L.extend(filterParams(), areaParams());
      p.bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (n) { return n.toFixed(5); }).join(",");
      p.format = formatSel.value;
      p.paper = paperSel.value;
      p.title = headingInput.value;
      p.lang = lang;
      p.layers = cfg.overlays.filter(function (o) { return map.hasLayer(bw.layers[o.id]); })
        .map(function (o) { return o.id; }).concat(map.hasLayer(tiles) ? ["enterprises"] : []).join(",");
      if (bw.state.area) { p.area_label = bw.state.area.label || ""; }
      return api + "/map/print?" + qs(p);
    }
    bw.printUrl = printUrl;

    /* A late section (a plug-in that builds its panel after loading its own data). */
    bw.addPanelSection = function (title, node) {
      return section(title, "bw-plugin-section", [node]);
    };

    registry.panelSections.slice().sort(function (a, b) { return (a.order || 0) - (b.order || 0); })
      .forEach(function (sec) {
        try {
          var title = typeof sec.title === "function" ? sec.title(bw) : sec.title;
          section(typeof title === "string" ? title : (title[lang] || title.zh),
                  "bw-plugin-" + sec.id, [sec.render(bw)]);
        }
        catch (e) { showError(sec.id, e); }
      });

    var panelCtl = L.control({position: "topleft"});
    panelCtl.onAdd = function () {
      L.DomEvent.disableClickPropagation(panel);
      L.DomEvent.disableScrollPropagation(panel);
      return panel;
    };
    panelCtl.addTo(map);
    if (phone) { setPanelOpen(false); }
    // keyboard: the skip link lands in the panel; Esc in the panel returns to the map
    panel.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape" && !tools.active()) { element.focus(); }
    });

    function fillZonePicker(features) {
      var group = el("optgroup", {label: pack.columns.district || "district"});
      features.slice().sort(function (a, b) {
        return String(a.properties.code).localeCompare(String(b.properties.code));
      }).forEach(function (f) {
        var p = f.properties;
        group.appendChild(el("option", {value: "district_code=" + p.code,
                                        text: (p.city_zh || "") + " " + (p.name_zh || "")}));
      });
      zonePicker.appendChild(group);
      if (bw.state.area && bw.state.area.key === "district_code") {
        zonePicker.value = "district_code=" + bw.state.area.value;
      }
    }

    function setFilter(key, value) {
      if (key === "zone") {
        delete bw.filters.basin_id;
        delete bw.filters.region_id;
        if (value) {
          var kv = value.split("=");
          bw.filters[kv[0]] = kv[1];
        }
      } else {
        bw.filters[key] = value;
      }
      refresh();
      loadDensity();
      if (bw.state.area) { loadArea(); }
      if (bw.dashboard) { bw.dashboard.refresh(); }
      saveState();
    }
    bw.setFilter = setFilter;

    function syncFilterControls() {
      industrySel.value = bw.filters.industry_id || "";
      reviewSel.value = bw.filters.needs_review || "";
      zoneSel.value = bw.filters.basin_id ? "basin_id=" + bw.filters.basin_id :
        (bw.filters.region_id ? "region_id=" + bw.filters.region_id : "");
      var on = bw.filters.verdict ? bw.filters.verdict.split(",") : null;
      Array.prototype.forEach.call(vbox.querySelectorAll("input"), function (c) {
        c.checked = !on || on.indexOf(c.value) >= 0;
      });
    }

    function showError(what, err) {
      notice(what + " " + ui.load_error + "：" + (err && err.message));
    }

    // ---------------------------------------------------------------- search
    var searchSeq = 0;
    function runSearch(text) {
      var term = text.trim(), seq = ++searchSeq;
      if (!term) { searchList.textContent = ""; return Promise.resolve(); }
      return getJSON(api + "/map/search?" + qs({q: term})).then(function (body) {
        if (seq !== searchSeq) { return; }
        searchList.textContent = "";
        if (!body.rows.length) { searchList.appendChild(el("div", {cls: "bw-note", text: ui.search_none})); }
        body.rows.forEach(function (r) {
          searchList.appendChild(el("a", {cls: "bw-result", href: "#", role: "listitem", "data-fid": r[0],
            onclick: function (ev) {
              ev.preventDefault();
              if (phone) { setPanelOpen(false); }
              flyToEnterprise(r[0], r[4], r[5]);
            }}, [dot(verdictColour(r[3])), r[1], el("small", {text: r[2]})]));
        });
      }).catch(function (err) { showError(ui.search, err); });
    }
    bw.search = runSearch;

    function flyToEnterprise(fid, lat, lon) {
      var ll = L.latLng(lat, lon);
      map.once("moveend", function () { openEnterprise(fid, ll); });
      map.flyTo(ll, Math.max(map.getZoom(), 15), {duration: 0.6});
    }
    bw.flyToEnterprise = flyToEnterprise;

    // ---------------------------------------------------------------- area selection
    function zoneBounds(area) {
      var b = null;
      function grow(layer) {
        layer.eachLayer(function (f) {
          var p = f.feature && f.feature.properties;
          if (!p) { return; }
          var hit = (area.key === "district_code" && String(p.code) === String(area.value)) ||
            (area.key === "city" && p.name_zh === area.value) ||
            (area.key === "park_id" && p.id === area.value);
          if (hit) { b = b ? b.extend(f.getBounds()) : L.latLngBounds(f.getBounds()); }
        });
      }
      if (area.key === "basin_id" || area.key === "region_id") {
        var g = bw.layers[area.value];
        if (g && g.bwLoaded === true && g.getLayers().length) { return g.getBounds(); }
        return null;
      }
      ["districts", "cities", "parks"].forEach(function (id) {
        if (bw.layers[id] && bw.layers[id].bwLoaded === true) { grow(bw.layers[id]); }
      });
      return b;
    }

    function showAreaShape() {
      var a = bw.state.area;
      if (!a) { return; }
      if (a.wkt) {
        var m = /POLYGON\(\((.*)\)\)/.exec(a.wkt);
        if (m) {
          tools.showPolygon(m[1].split(",").slice(0, -1).map(function (pair) {
            var xy = pair.trim().split(/\s+/);
            return L.latLng(+xy[1], +xy[0]);
          }));
        }
      } else if (a.zoom) {
        var b = zoneBounds(a);
        if (b) {
          a.zoom = false;
          map.fitBounds(b, {paddingTopLeft: phone ? [10, 10] : [330, 20], paddingBottomRight: [20, 20],
                            animate: false});
        }
      }
    }

    function setArea(area, zoom) {
      tools.cancel();
      bw.state.area = area;
      bw.state.areaResult = null;
      if (!area || !area.wkt) { tools.shapes.clearLayers(); }
      if (!area || area.wkt) { zonePicker.value = ""; }
      else {
        var v = area.key + "=" + area.value;
        var known = Array.prototype.some.call(zonePicker.options, function (o) { return o.value === v; });
        zonePicker.value = known ? v : "";
      }
      saveState();
      if (bw.dashboard) { bw.dashboard.refresh(); }
      loadDensity();
      if (!area) { areaBox.textContent = ""; return Promise.resolve(); }
      area.zoom = !!zoom;
      showAreaShape();
      return loadArea();
    }
    bw.setArea = setArea;

    function loadArea() {
      var area = bw.state.area;
      var params = L.extend(filterParams(), areaParams());
      areaBox.textContent = ui.loading;
      return getJSON(api + "/map/area?" + qs(params)).then(function (body) {
        if (bw.state.area !== area) { return; }
        bw.state.areaResult = body;
        areaBox.textContent = "";
        areaBox.appendChild(el("div", {}, [el("b", {text: area.label || ui.drawn_area}), " " + ui.total + " ",
                                           el("b", {cls: "bw-area-total", text: String(body.total)})]));
        var tbody = el("tbody");
        cfg.verdicts.forEach(function (v) {
          var n = body.verdict[v[0]] || 0;
          if (n) { tbody.appendChild(el("tr", {}, [el("td", {}, [dot(v[2]), verdictLabel(v[0])]), el("td", {text: String(n)})])); }
        });
        areaBox.appendChild(el("table", {cls: "bw-counts"}, [tbody]));
        var ind = Object.keys(body.industry).sort(function (a, b) { return body.industry[b] - body.industry[a]; });
        if (ind.length) {
          areaBox.appendChild(el("div", {cls: "bw-note", text: ind.map(function (k) {
            return (pack.industry_names[k] || k || "?") + " " + body.industry[k];
          }).join(lang === "en" ? ", " : "，")}));
        }
        var dl = qs(params);
        exportBox = el("div", {cls: "bw-export", id: "bw-export", "aria-live": "polite"});
        areaBox.appendChild(el("div", {cls: "bw-downloads"}, [ui.download + "：",
          el("button", {type: "button", cls: "bw-btn", id: "bw-dl-xlsx", "data-href": api + "/exports/enforcement?format=xlsx&" + dl,
                        text: "Excel", onclick: function () { exportJob("xlsx", params); }}),
          " ",
          el("a", {id: "bw-dl-csv", cls: "bw-btn bw-btn-link", href: api + "/exports/enforcement?format=csv&" + dl,
                   download: "", text: "CSV"})]));
        areaBox.appendChild(exportBox);
        areaBox.appendChild(el("ol", {cls: "bw-area-list"}, body.rows.map(function (r) {
          return el("li", {}, [el("a", {href: "#", "data-fid": r[0], onclick: function (ev) {
            ev.preventDefault();
            if (phone) { setPanelOpen(false); }
            flyToEnterprise(r[0], r[5], r[6]);
          }}, [dot(verdictColour(r[4])), r[1]]), el("small", {text: pack.industry_names[r[3]] || r[3]})]);
        })));
        if (body.total > body.rows.length) {
          areaBox.appendChild(el("div", {cls: "bw-note", text: ui.list_more.replace("{n}", body.rows.length)}));
        }
      }).catch(function (err) { areaBox.textContent = ui.load_error + "：" + err.message; });
    }

    // ---------------------------------------------------------------- exports with progress
    function exportJob(fmt, params) {
      var body = L.extend({format: fmt, lang: lang}, params);
      if (bw.state.area && bw.state.area.label) { body.area_label = bw.state.area.label; }
      exportBox.textContent = "";
      var bar = el("progress", {max: "100", value: "0", id: "bw-export-progress", "aria-label": ui.xlsx_progress});
      var text = el("span", {cls: "bw-note", text: ui.exporting + "…"});
      exportBox.appendChild(bar);
      exportBox.appendChild(text);
      bw.state.export = {state: "starting"};
      return fetch(api + "/exports/jobs?" + qs(body), {method: "POST", credentials: "same-origin",
                                                        headers: {"Accept": "application/json"}})
        .then(function (r) { return r.json().then(function (j) { if (!r.ok) { throw new Error(j.description || r.status); } return j; }); })
        .then(function (job) {
          return new Promise(function (resolve, reject) {
            function poll() {
              getJSON(api + "/exports/jobs/" + job.id).then(function (st) {
                bw.state.export = st;
                var pct = st.total ? Math.round(100 * st.done / st.total) : 0;
                bar.value = st.state === "done" ? 100 : pct;
                text.textContent = (st.state === "done" ? ui.export_done : ui.exporting) + " " +
                  st.done.toLocaleString() + " / " + st.total.toLocaleString() + " " + ui.export_rows;
                if (st.state === "done") {
                  var a = el("a", {href: api + "/exports/jobs/" + job.id + "/file", download: st.filename || "",
                                   id: "bw-export-file", text: st.filename || "xlsx"});
                  exportBox.appendChild(a);
                  a.click();
                  resolve(st);
                } else if (st.state === "failed") {
                  reject(new Error(st.error || ui.export_failed));
                } else { setTimeout(poll, 300); }
              }).catch(reject);
            }
            poll();
          });
        })
        .catch(function (err) {
          bw.state.export = {state: "failed", error: err.message};
          text.textContent = ui.export_failed + "：" + err.message;
        });
    }
    bw.exportJob = exportJob;

    // ---------------------------------------------------------------- restore state, go
    function restore(h) {
      FILTER_KEYS.forEach(function (k) { if (h[k]) { bw.filters[k] = h[k]; } });
      if (h.op) {
        h.op.split(",").forEach(function (kv) {
          var p = kv.split(":");
          if (p.length === 2 && isFinite(+p[1])) { bw.opacity[p[0]] = Math.max(0.1, Math.min(1, +p[1])); }
        });
      }
      var shown = h.l !== undefined ? h.l.split(",") : null;
      var base = bw.layers["base_" + h.b] || offline;
      base.addTo(map);
      bw.state.base = base === offline ? "offline" : h.b;
      if (base.bwBase) { map.fire("baselayerchange", {layer: base}); }
      cfg.overlays.forEach(function (info) {
        if (!shown || shown.indexOf(info.id) >= 0) { bw.layers[info.id].addTo(map); }
      });
      registry.overlays.forEach(function (spec) {
        if (shown ? shown.indexOf(spec.id) >= 0 : spec.visible) { bw.layers[spec.id].addTo(map); }
      });
      if (shown && shown.indexOf("density") >= 0) { densityLayer.addTo(map); }
      var view = h.v ? h.v.split("/").map(Number) : null;
      if (view && view.length === 3 && view.every(isFinite)) {
        map.setView([view[1], view[2]], view[0], {animate: false});
      } else {
        map.fitBounds(cfg.initial_bounds, {animate: false, padding: phone ? [8, 8] : [20, 20],
                                           paddingTopLeft: phone ? [8, 8] : [320, 20]});
      }
      Object.keys(bw.opacity).forEach(function (k) { setOpacity(k, bw.opacity[k]); });
      syncFilterControls();
      tiles.setParams(tileQuery());
      if (!shown || shown.indexOf("enterprises") >= 0) { tiles.addTo(map); } else { renderCount(); }
      if (h.area) {
        if (/^POLYGON/.test(h.area)) { setArea({wkt: h.area, label: ui.drawn_area}, false); }
        else {
          var i = h.area.indexOf(":");
          var key = h.area.slice(0, i), value = h.area.slice(i + 1);
          var label = (key === "basin_id" || key === "region_id") ? (pack.zones[value] || value) : value;
          setArea({key: key, value: value, label: label}, false);
        }
      }
      if (h.sel && isFinite(+h.sel)) { openEnterprise(+h.sel, null); }
      if (h.dash === "1") { bw.toggleDashboard(true); }
    }


    map.on("moveend", function () {  // a view whose tiles were all kept needs no load
      setTimeout(function () {
        if (!tiles._loading && bw.state.viewStart !== null && bw.state.viewStart !== undefined) {
          bw.state.lastMs = performance.now() - bw.state.viewStart;
          bw.state.viewStart = null;
          bw.state.pending = false;
        }
      }, 0);
    });
    // The view's tiles first: the count (a request and server time of its own), the labels
    // and the URL state wait until they are drawn (at most 1 s), so the count does not hold
    // one of the browser's 6 connections and the server while the tiles queue.
    function afterTiles(fn) {
      if (!tiles._loading || !map.hasLayer(tiles)) { fn(); return; }
      var done = false, timer = null;
      function go() {
        if (done) { return; }
        done = true;
        tiles.off("load", go);
        clearTimeout(timer);
        fn();
      }
      timer = setTimeout(go, 1000);
      tiles.on("load", go);
    }
    map.on("moveend", debounce(function () {
      afterTiles(function () { refreshCount(); placeLabels(); saveState(); });
    }, 150));
    if (global.BasinWatchDashboard) {
      bw.dashboard = global.BasinWatchDashboard.create(bw, {el: el, dot: dot, getJSON: getJSON,
        filterParams: filterParams, areaParams: areaParams, qs: qs, pack: pack,
        verdictLabel: verdictLabel, setArea: setArea});
    }
    bw.toggleDashboard = function (open) {
      if (!bw.dashboard) { return; }
      var on = bw.dashboard.toggle(open);
      bw.state.dash = on;
      dashBtn.setAttribute("aria-expanded", on ? "true" : "false");
      saveState();
    };
    restore(url0);
    restoring = false;
    saveState();
    registry.onInit.forEach(function (fn) { try { fn(bw); } catch (e) { showError("plugin", e); } });
    return bw;
  }

  global.BasinWatchMap = {init: init, esc: esc, wgs2gcj: wgs2gcj, plugins: plugins,
                          parseHash: parseHash};
})(window);
