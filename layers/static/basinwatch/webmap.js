/* BasinWatch planners' web map (served by the BasinWatch API; no external requests).
 *
 * BasinWatchMap.init(map, config) wires a folium/Leaflet map to the API:
 *  - reference layers from /map/layers/{id} (simplified GeoJSON), loaded when shown;
 *  - enterprises from /map/enterprises?bbox&zoom&<filters> on every move: points when the
 *    view holds few, server-side grid cells otherwise; popups from the OGC item route;
 *  - search (/map/search), area statistics (/map/area) + export links (/exports/enforcement),
 *    density overlay (/map/density);
 *  - base layers: offline reference polygons (default) and online tiles that request
 *    nothing until chosen; Amap tiles are GCJ-02 and are shifted per view (see GcjTileLayer).
 * All text from the API is HTML-escaped before it reaches innerHTML.
 * State for tests and benchmarks: window.bw.
 */
(function (global) {
  "use strict";

  function esc(value) {
    if (value === null || value === undefined) { return ""; }
    return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
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

  /* Tiles drawn in GCJ-02 (Amap). Leaflet places everything in WGS84; the street that
   * truly is at P appears in the tiles where GCJ(P) would be. So (1) tiles are chosen
   * around GCJ(view centre) and (2) the tile container is shifted by
   * project(centre) - project(GCJ(centre)) pixels. The offset varies by well under a
   * metre across one view, so one shift per view puts streets under the markers. */
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

  function debounce(fn, ms) {
    var t = null;
    return function () {
      var args = arguments, self = this;
      clearTimeout(t);
      t = setTimeout(function () { fn.apply(self, args); }, ms);
    };
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

  function el(tag, cls, html) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (html !== undefined) { e.innerHTML = html; }
    return e;
  }

  function init(map, cfg) {
    var ui = cfg.ui, api = cfg.api || "";
    var verdictIndex = {};
    cfg.verdicts.forEach(function (v, i) { verdictIndex[v[0]] = i; });
    var bw = {
      map: map, cfg: cfg, esc: esc, wgs2gcj: wgs2gcj,
      state: {mode: null, total: 0, shown: 0, requests: 0, lastMs: null, ready: false,
              layersLoaded: {}, area: null, areaResult: null},
      timings: [], layers: {}, filters: {}
    };
    global.bw = bw;
    var t0 = performance.now();
    var svg = L.svg({padding: 0.5});
    // enterprises above the reference polygons so clicks reach the markers first
    map.createPane("bwEnterprises").style.zIndex = 450;
    var canvas = L.canvas({padding: 0.5, pane: "bwEnterprises"});

    // ---------------------------------------------------------------- fetch helpers
    function getJSON(url, signal) {
      var start = performance.now();
      bw.state.requests += 1;
      return fetch(url, {signal: signal, headers: {"Accept": "application/json"}})
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
      Object.keys(bw.filters).forEach(function (k) {
        if (bw.filters[k] !== "" && bw.filters[k] !== null) { p[k] = bw.filters[k]; }
      });
      return p;
    }

    function areaParams() {
      var a = bw.state.area, p = {};
      if (!a) { return p; }
      if (a.wkt) { p.within = a.wkt; } else { p[a.key] = a.value; }
      return p;
    }

    // ---------------------------------------------------------------- reference layers
    function layerLabel(kind, props) {
      return props.name_zh || props.id || props.code || "";
    }

    function zoneOf(kind, id, props) {
      if (kind === "basin") { return {key: "basin_id", value: id}; }
      if (kind === "region") { return {key: "region_id", value: id}; }
      if (kind === "park") { return {key: "park_id", value: props.id}; }
      if (kind === "district") { return {key: "district_code", value: props.code}; }
      if (kind === "city") { return {key: "city", value: props.name_zh}; }
      return null;
    }

    function referenceLayer(info) {
      var group = L.geoJSON(null, {
        renderer: svg,
        style: function () {
          var s = Object.assign({}, info.style);
          s.className = "bw-ref bw-ref-" + info.kind + " bw-layer-" + info.id;
          return s;
        },
        onEachFeature: function (feature, layer) {
          var props = feature.properties || {};
          var label = layerLabel(info.kind, props);
          layer.bindTooltip(esc(label), {sticky: true});
          layer.on("click", function (e) {
            var zone = zoneOf(info.kind, info.id, props);
            if (!zone || !zone.value || bw.drawing) { return; }
            var box = el("div", "bw-zone-popup");
            box.appendChild(el("b", null, esc(info.title) + (label && label !== info.title ?
              "：" + esc(label) : "")));
            var btn = el("button", "bw-btn", esc(ui.stat_this));
            btn.type = "button";
            btn.addEventListener("click", function () {
              map.closePopup();
              setArea({key: zone.key, value: zone.value, label: label || info.title});
            });
            box.appendChild(el("br"));
            box.appendChild(btn);
            L.popup().setLatLng(e.latlng).setContent(box).openOn(map);
          });
        }
      });
      group.bwInfo = info;
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
            group.bringToBack();
          })
          .catch(function (err) { group.bwLoaded = false; showError(info.title, err); });
      });
      bw.layers[info.id] = group;
      return group;
    }

    // ---------------------------------------------------------------- enterprises
    var entLayer = L.layerGroup();
    bw.layers.enterprises = entLayer;
    var ctrl = null;  // AbortController of the running view request

    function markerStyle(v) {
      var colour = (cfg.verdicts[v] || [null, null, "#cccccc"])[2];
      return {renderer: canvas, radius: 6, weight: 1, color: "#333333", fillColor: colour,
              fillOpacity: 0.9};
    }

    function refresh() {
      if (!map.hasLayer(entLayer)) { return Promise.resolve(); }
      if (ctrl) { ctrl.abort(); }
      ctrl = new AbortController();
      var b = map.getBounds().pad(0.05);
      var params = filterParams();
      params.bbox = [Math.max(b.getWest(), -180), Math.max(b.getSouth(), -90),
                     Math.min(b.getEast(), 180), Math.min(b.getNorth(), 90)]
        .map(function (n) { return n.toFixed(5); }).join(",");
      params.zoom = map.getZoom();
      var start = performance.now();
      var url = api + "/map/enterprises?" + qs(params);
      bw.state.pending = true;
      return getJSON(url, ctrl.signal).then(function (body) {
        bw.state.points = body.mode === "points" ? body.points.length : 0;
        draw(body);
        bw.state.lastMs = performance.now() - start;
        bw.state.pending = false;
        if (!bw.state.ready) {
          bw.state.ready = true;
          bw.state.firstRenderMs = performance.now() - t0;
          bw.state.readyAt = performance.now();  // ms since navigation start
        }
      }).catch(function (err) {
        if (err && err.name === "AbortError") { return; }
        bw.state.pending = false;
        showError(ui.enterprises, err);
      });
    }
    bw.refresh = refresh;

    function draw(body) {
      entLayer.clearLayers();
      bw.state.mode = body.mode;
      bw.state.total = body.total;
      var shown = 0;
      if (body.mode === "points") {
        body.points.forEach(function (p) {
          var m = L.circleMarker([p[1], p[2]], markerStyle(p[3]));
          m.bwFid = p[0];
          m.on("click", function () { openEnterprise(p[0], m.getLatLng()); });
          entLayer.addLayer(m);
          shown += 1;
        });
      } else {
        body.cells.forEach(function (c) {
          var n = c[2], size = Math.round(22 + 8 * Math.log10(n));
          var colour = (cfg.verdicts[c[3]] || [null, null, "#cccccc"])[2];
          var icon = L.divIcon({
            className: "bw-cell",
            html: '<div style="width:' + size + "px;height:" + size + "px;line-height:" + size +
              'px;border-color:' + esc(colour) + '">' + n + "</div>",
            iconSize: [size, size]
          });
          var m = L.marker([c[0], c[1]], {icon: icon, keyboard: false});
          m.on("click", function () { map.setView([c[0], c[1]], Math.min(map.getZoom() + 2, 18)); });
          entLayer.addLayer(m);
          shown += 1;
        });
      }
      bw.state.shown = shown;
      countBox.innerHTML = esc(ui.in_view) + "：<b>" + body.total + "</b>" +
        (body.mode === "grid" ? '<div class="bw-note">' + esc(ui.grid_note) + "</div>" : "");
    }

    function labelled(field, value, props) {
      var L_ = cfg.labels;
      if (field === "verdict") {
        var i = verdictIndex[value];
        return i === undefined ? esc(value) :
          '<span class="bw-dot" style="background:' + esc(cfg.verdicts[i][2]) + '"></span>' +
          esc(cfg.verdicts[i][1]);
      }
      if (field === "basin_id" || field === "region_id") { return esc(L_.zones[value] || value); }
      if (field === "geocode_precision") {
        return esc(L_.precision[value] || value) +
          (props.geocode_unit ? "（" + esc(props.geocode_unit) + "）" : "");
      }
      if (field === "needs_review") {
        var yes = value === true || value === "true";
        return esc(yes ? ui.yes : ui.no) + (yes && props.review_reasons ?
          '<div class="bw-note">' + esc(ui.review_reasons) + "：" + esc(String(props.review_reasons).split(";")
            .filter(function (c) { return c; })
            .map(function (c) { return (L_.review_reasons || {})[c] || c; }).join("；")) +
          "</div>" : "");
      }
      if (field === "reasons") {
        var parts = String(value || "").split("；").filter(function (s) { return s.trim(); });
        if (!parts.length) { return ""; }
        return "<ul>" + parts.map(function (s) { return "<li>" + esc(s) + "</li>"; }).join("") +
          "</ul>";
      }
      if (field === "standards") { return esc(String(value || "").split(";").join("；")); }
      return esc(value);
    }

    function popupHtml(props) {
      var rows = cfg.popup_fields.map(function (f) {
        var v = props[f];
        if ((v === "" || v === null || v === undefined) && f !== "needs_review") { return ""; }
        return "<tr><th>" + esc(cfg.labels.columns[f] || f) + "</th><td>" +
          labelled(f, v, props) + "</td></tr>";
      }).join("");
      return '<table class="bw-popup" data-fid="' + esc(props.fid) + '">' + rows + "</table>";
    }

    function openEnterprise(fid, latlng) {
      var popup = L.popup({maxWidth: 420, className: "bw-enterprise-popup"})
        .setLatLng(latlng).setContent(esc(ui.loading)).openOn(map);
      return getJSON(api + "/collections/enterprises/items/" + encodeURIComponent(fid))
        .then(function (feat) {
          popup.setContent(popupHtml(Object.assign({fid: fid}, feat.properties || {})));
        })
        .catch(function (err) { popup.setContent(esc(ui.load_error) + "：" + esc(err.message)); });
    }
    bw.openEnterprise = openEnterprise;

    // ---------------------------------------------------------------- density overlay
    var densityLayer = L.layerGroup();
    bw.layers.density = densityLayer;
    function loadDensity() {
      if (!map.hasLayer(densityLayer)) { return; }
      getJSON(api + "/map/density?" + qs(filterParams())).then(function (body) {
        densityLayer.clearLayers();
        if (body.image) {
          densityLayer.addLayer(L.imageOverlay(body.image, body.bounds,
            {opacity: 0.75, className: "bw-density", interactive: false}));
        }
        bw.state.density = body.total;
      }).catch(function (err) { showError(ui.density, err); });
    }
    densityLayer.on("add", loadDensity);

    // ---------------------------------------------------------------- base layers
    var offline = L.layerGroup();
    var baseLayers = {};
    baseLayers[esc(ui.offline_base)] = offline;
    cfg.base_reference.forEach(function (info) { offline.addLayer(referenceLayer(info)); });
    cfg.base_layers.forEach(function (b) {
      var opts = {maxZoom: 18, maxNativeZoom: b.max_zoom || 18, attribution: b.attribution,
                  subdomains: b.subdomains || "abc", tk: b.token || ""};
      var layer = b.crs === "GCJ02" ? new GcjTileLayer(b.url, opts) : L.tileLayer(b.url, opts);
      if (b.label_url) {
        layer = L.layerGroup([layer, b.crs === "GCJ02" ? new GcjTileLayer(b.label_url, opts) :
          L.tileLayer(b.label_url, opts)]);
      }
      bw.layers["base_" + b.id] = layer;
      baseLayers[esc(b.title)] = layer;
    });
    bw.GcjTileLayer = GcjTileLayer;
    offline.addTo(map);

    var overlays = {};
    cfg.overlays.forEach(function (info) {
      var g = referenceLayer(info);
      overlays['<span class="bw-swatch" style="border-color:' + esc(info.style.color) +
               ";background:" + esc(info.style.fillColor || "transparent") + '"></span>' +
               esc(info.title)] = g;
      g.addTo(map);
    });
    overlays[esc(ui.enterprises)] = entLayer;
    overlays[esc(ui.density)] = densityLayer;
    entLayer.addTo(map);
    L.control.layers(baseLayers, overlays, {collapsed: global.innerWidth < 700, position: "topright"})
      .addTo(map);
    entLayer.on("add", function () { refresh(); });

    // ---------------------------------------------------------------- legend
    var legend = L.control({position: "bottomright"});
    legend.onAdd = function () {
      var div = L.DomUtil.create("div", "bw-legend");
      var html = "<b>" + esc(cfg.labels.words.legend_title) + "</b>";
      cfg.verdicts.forEach(function (v) {
        html += '<div><i style="background:' + esc(v[2]) + '"></i>' + esc(v[1]) + "</div>";
      });
      html += "<b>" + esc(ui.legend_layers) + "</b>";
      cfg.overlays.forEach(function (info) {
        html += '<div><span class="bw-swatch" style="border-color:' + esc(info.style.color) +
          ";background:" + esc(info.style.fillColor || "transparent") + '"></span>' +
          esc(info.title) + "</div>";
      });
      html += '<div><span class="bw-ramp" style="background:linear-gradient(to right,' +
        cfg.density_colors.map(esc).join(",") + ')"></span>' + esc(ui.legend_density) + "</div>";
      div.innerHTML = html;
      L.DomEvent.disableClickPropagation(div);
      return div;
    };
    legend.addTo(map);

    // ---------------------------------------------------------------- panel
    var panelCtl = L.control({position: "topleft"});
    var panel, countBox, areaBox, zonePicker, searchList;
    panelCtl.onAdd = function () {
      panel = L.DomUtil.create("div", "bw-panel");
      L.DomEvent.disableClickPropagation(panel);
      L.DomEvent.disableScrollPropagation(panel);
      var head = el("div", "bw-panel-head", "<b>" + esc(ui.panel_title) + "</b>");
      var toggle = el("button", "bw-btn bw-toggle", esc(ui.panel_toggle));
      toggle.type = "button";
      toggle.addEventListener("click", function () { panel.classList.toggle("bw-collapsed"); });
      head.appendChild(toggle);
      panel.appendChild(head);
      var body = el("div", "bw-panel-body");
      panel.appendChild(body);

      // search
      var search = el("input", "bw-search");
      search.type = "search";
      search.id = "bw-search";
      search.placeholder = ui.search_placeholder;
      search.setAttribute("aria-label", ui.search);
      searchList = el("div", "bw-search-results");
      searchList.id = "bw-search-results";
      body.appendChild(search);
      body.appendChild(searchList);
      search.addEventListener("input", debounce(function () { runSearch(search.value); }, 250));

      // filters
      function select(id, label, options, key) {
        var wrap = el("label", "bw-field", "<span>" + esc(label) + "</span>");
        var s = el("select");
        s.id = id;
        options.forEach(function (o) {
          var opt = el("option", null, esc(o[1]));
          opt.value = o[0];
          s.appendChild(opt);
        });
        s.addEventListener("change", function () { setFilter(key || id, s.value, s); });
        wrap.appendChild(s);
        body.appendChild(wrap);
        return s;
      }
      select("bw-industry", ui.industry, [["", ui.all]].concat(cfg.industries), "industry_id");
      var zones = [["", ui.all]].concat(cfg.zones.map(function (z) { return [z[0] + "=" + z[1], z[2]]; }));
      select("bw-zone", ui.zone, zones, "zone");
      select("bw-review", ui.review, [["", ui.all], ["true", ui.yes], ["false", ui.no]],
             "needs_review");
      var vbox = el("fieldset", "bw-verdicts", "<legend>" + esc(ui.verdict) + "</legend>");
      cfg.verdicts.forEach(function (v) {
        var lab = el("label", "bw-check");
        var cb = el("input");
        cb.type = "checkbox";
        cb.checked = true;
        cb.value = v[0];
        cb.className = "bw-verdict";
        cb.addEventListener("change", function () {
          var on = Array.prototype.filter.call(vbox.querySelectorAll("input"),
            function (c) { return c.checked; }).map(function (c) { return c.value; });
          setFilter("verdict", on.length === cfg.verdicts.length ? "" :
            (on.length ? on.join(",") : "__none__"));
        });
        lab.appendChild(cb);
        lab.appendChild(el("span", null, '<i style="background:' + esc(v[2]) + '"></i>' +
                           esc(v[1])));
        vbox.appendChild(lab);
      });
      body.appendChild(vbox);
      countBox = el("div", "bw-count");
      countBox.id = "bw-count";
      body.appendChild(countBox);

      // area tools
      var abox = el("fieldset", "bw-area-tools", "<legend>" + esc(ui.area) + "</legend>");
      [["bw-draw-rect", ui.draw_rect, function () { startRect(); }],
       ["bw-draw-poly", ui.draw_polygon, function () { startPolygon(); }],
       ["bw-finish-poly", ui.finish_polygon, function () { finishPolygon(); }],
       ["bw-clear-area", ui.clear_area, function () { setArea(null); }]].forEach(function (b) {
        var btn = el("button", "bw-btn", esc(b[1]));
        btn.type = "button";
        btn.id = b[0];
        btn.addEventListener("click", b[2]);
        abox.appendChild(btn);
      });
      zonePicker = el("select");
      zonePicker.id = "bw-zone-pick";
      var first = el("option", null, esc(ui.pick_zone));
      first.value = "";
      zonePicker.appendChild(first);
      cfg.zones.forEach(function (z) {
        var o = el("option", null, esc(z[2]));
        o.value = z[0] + "=" + z[1];
        zonePicker.appendChild(o);
      });
      zonePicker.addEventListener("change", function () {
        if (!zonePicker.value) { return; }
        var kv = zonePicker.value.split("=");
        setArea({key: kv[0], value: kv.slice(1).join("="),
                 label: zonePicker.options[zonePicker.selectedIndex].text});
      });
      abox.appendChild(zonePicker);
      abox.appendChild(el("div", "bw-note", esc(ui.pick_zone_hint)));
      areaBox = el("div", "bw-area");
      areaBox.id = "bw-area";
      abox.appendChild(areaBox);
      body.appendChild(abox);
      return panel;
    };
    panelCtl.addTo(map);
    if (global.innerWidth < 700) { panel.classList.add("bw-collapsed"); }

    function fillZonePicker(features) {
      var group = el("optgroup");
      group.label = cfg.labels.columns.district || "";
      features.slice().sort(function (a, b) {
        return String(a.properties.code).localeCompare(String(b.properties.code));
      }).forEach(function (f) {
        var p = f.properties, o = el("option", null, esc((p.city_zh || "") + " " + (p.name_zh || "")));
        o.value = "district_code=" + p.code;
        group.appendChild(o);
      });
      zonePicker.appendChild(group);
    }

    function setFilter(key, value, selectEl) {
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
    }
    bw.setFilter = setFilter;

    function showError(what, err) {
      countBox.innerHTML = '<span class="bw-error">' + esc(what) + " " + esc(ui.load_error) +
        "：" + esc(err && err.message) + "</span>";
    }

    // ---------------------------------------------------------------- search
    var searchSeq = 0;
    function runSearch(text) {
      var term = text.trim(), seq = ++searchSeq;
      if (!term) { searchList.innerHTML = ""; return Promise.resolve(); }
      return getJSON(api + "/map/search?" + qs({q: term})).then(function (body) {
        if (seq !== searchSeq) { return; }
        searchList.innerHTML = "";
        if (!body.rows.length) {
          searchList.appendChild(el("div", "bw-note", esc(ui.search_none)));
        }
        body.rows.forEach(function (r) {
          var i = verdictIndex[r[3]];
          var item = el("a", "bw-result", '<span class="bw-dot" style="background:' +
            esc(i === undefined ? "#ccc" : cfg.verdicts[i][2]) + '"></span>' + esc(r[1]) +
            '<small>' + esc(r[2]) + "</small>");
          item.href = "#";
          item.dataset.fid = r[0];
          item.addEventListener("click", function (ev) {
            ev.preventDefault();
            flyToEnterprise(r[0], r[4], r[5]);
          });
          searchList.appendChild(item);
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
    var areaShape = L.featureGroup().addTo(map);
    function wktOf(latlngs) {
      var ring = latlngs.map(function (p) { return p.lng.toFixed(5) + " " + p.lat.toFixed(5); });
      ring.push(ring[0]);
      return "POLYGON((" + ring.join(",") + "))";
    }

    function setArea(area) {
      bw.state.area = area;
      bw.state.areaResult = null;
      if (!area || !area.wkt) { areaShape.clearLayers(); }
      if (!area) { areaBox.innerHTML = ""; zonePicker.value = ""; return Promise.resolve(); }
      return loadArea();
    }
    bw.setArea = setArea;

    function loadArea() {
      var area = bw.state.area;
      var params = Object.assign(filterParams(), areaParams());
      areaBox.innerHTML = esc(ui.loading);
      return getJSON(api + "/map/area?" + qs(params)).then(function (body) {
        if (bw.state.area !== area) { return; }
        bw.state.areaResult = body;
        var html = "<div><b>" + esc(area.label || ui.drawn_area) + "</b> " + esc(ui.total) +
          " <b class=\"bw-area-total\">" + body.total + "</b></div><table class=\"bw-counts\">";
        cfg.verdicts.forEach(function (v) {
          var n = body.verdict[v[0]] || 0;
          if (n) {
            html += '<tr><td><span class="bw-dot" style="background:' + esc(v[2]) + '"></span>' +
              esc(v[1]) + "</td><td>" + n + "</td></tr>";
          }
        });
        html += "</table>";
        var ind = Object.keys(body.industry).sort(function (a, b) {
          return body.industry[b] - body.industry[a];
        });
        if (ind.length) {
          html += '<div class="bw-note">' + ind.map(function (k) {
            return esc(k || "?") + " " + body.industry[k];
          }).join("，") + "</div>";
        }
        var dl = qs(params);
        html += '<div class="bw-downloads">' + esc(ui.download) + "：" +
          '<a id="bw-dl-xlsx" href="' + esc(api + "/exports/enforcement?format=xlsx&" + dl) +
          '" download>Excel</a> · <a id="bw-dl-csv" href="' +
          esc(api + "/exports/enforcement?format=csv&" + dl) + '" download>CSV</a></div>';
        html += '<ol class="bw-area-list">' + body.rows.map(function (r) {
          var i = verdictIndex[r[4]];
          return '<li><a href="#" data-fid="' + r[0] + '" data-lat="' + r[5] + '" data-lon="' +
            r[6] + '"><span class="bw-dot" style="background:' +
            esc(i === undefined ? "#ccc" : cfg.verdicts[i][2]) + '"></span>' + esc(r[1]) +
            "</a> <small>" + esc(r[3]) + "</small></li>";
        }).join("") + "</ol>";
        if (body.total > body.rows.length) {
          html += '<div class="bw-note">' + esc(ui.list_more.replace("{n}", body.rows.length)) +
            "</div>";
        }
        areaBox.innerHTML = html;
        Array.prototype.forEach.call(areaBox.querySelectorAll("ol a"), function (a) {
          a.addEventListener("click", function (ev) {
            ev.preventDefault();
            flyToEnterprise(+a.dataset.fid, +a.dataset.lat, +a.dataset.lon);
          });
        });
      }).catch(function (err) { areaBox.innerHTML = esc(ui.load_error) + "：" + esc(err.message); });
    }

    function beginDraw() {
      areaShape.clearLayers();
      bw.drawing = true;
      map.dragging.disable();
      map.doubleClickZoom.disable();
      map.getContainer().classList.add("bw-drawing");
    }

    function endDraw() {
      bw.drawing = false;
      map.dragging.enable();
      map.doubleClickZoom.enable();
      map.getContainer().classList.remove("bw-drawing");
    }

    function startRect() {
      beginDraw();
      var start = null, rect = null;
      function down(e) { start = e.latlng; rect = L.rectangle([start, start], {color: "#d7301f", weight: 2, fillOpacity: 0.05}).addTo(areaShape); }
      function move(e) { if (start) { rect.setBounds(L.latLngBounds(start, e.latlng)); } }
      function up(e) {
        if (!start) { return; }
        map.off("mousedown", down).off("mousemove", move).off("mouseup", up);
        endDraw();
        var b = L.latLngBounds(start, e.latlng);
        if (b.getNorth() === b.getSouth() || b.getEast() === b.getWest()) { areaShape.clearLayers(); return; }
        rect.setBounds(b);
        setArea({wkt: wktOf([b.getSouthWest(), b.getSouthEast(), b.getNorthEast(), b.getNorthWest()]),
                 label: ui.drawn_area});
      }
      map.on("mousedown", down).on("mousemove", move).on("mouseup", up);
    }

    var poly = null;
    function startPolygon() {
      beginDraw();
      poly = {points: [], line: L.polyline([], {color: "#d7301f", weight: 2, dashArray: "4 4"}).addTo(areaShape)};
      map.on("click", addVertex);
      map.on("dblclick", finishPolygon);
    }
    function addVertex(e) {
      poly.points.push(e.latlng);
      poly.line.setLatLngs(poly.points);
    }
    function finishPolygon() {
      if (!poly) { return; }
      map.off("click", addVertex).off("dblclick", finishPolygon);
      endDraw();
      var pts = poly.points;
      poly = null;
      areaShape.clearLayers();
      if (pts.length < 3) { return; }
      L.polygon(pts, {color: "#d7301f", weight: 2, fillOpacity: 0.05}).addTo(areaShape);
      setArea({wkt: wktOf(pts), label: ui.drawn_area});
    }

    // ---------------------------------------------------------------- go
    map.on("moveend", debounce(refresh, 120));
    refresh();
    return bw;
  }

  global.BasinWatchMap = {init: init, esc: esc, wgs2gcj: wgs2gcj};
})(window);
