/* BasinWatch map tools: rectangle / polygon drawing and distance / area measuring.
 *
 * BasinWatchTools.create(map, opts) -> tools with start(kind), cancel(), finish(), active().
 * kinds: "rect" (press-drag-release with mouse, pen or finger: Pointer Events), "polygon"
 * (click or tap vertices, double-click / finish button ends), "measure-line",
 * "measure-area". Esc cancels any of them and gives panning back; while a tool is active the
 * map's own click handlers see `tools.active()` and ignore the click (no popups).
 * Geodesy on WGS84: Vincenty's inverse formula for distances (mm accuracy, falls back to a
 * spherical estimate for near-antipodal points, which a map view never holds) and the
 * spherical-excess polygon area on the authalic sphere (R = 6371007.2 m).
 */
(function (global) {
  "use strict";

  var A = 6378137.0, F = 1 / 298.257223563, B = A * (1 - F), R_AUTHALIC = 6371007.2;

  function rad(d) { return d * Math.PI / 180; }

  /* Geodesic distance in metres between two L.LatLng on WGS84 (Vincenty 1975). */
  function distance(p, q) {
    var L1 = rad(q.lng - p.lng);
    var U1 = Math.atan((1 - F) * Math.tan(rad(p.lat)));
    var U2 = Math.atan((1 - F) * Math.tan(rad(q.lat)));
    var sinU1 = Math.sin(U1), cosU1 = Math.cos(U1), sinU2 = Math.sin(U2), cosU2 = Math.cos(U2);
    var lambda = L1, prev, iter = 0, sinSigma, cosSigma, sigma, cos2Alpha, cos2SigmaM;
    do {
      var sinL = Math.sin(lambda), cosL = Math.cos(lambda);
      sinSigma = Math.sqrt(Math.pow(cosU2 * sinL, 2) +
        Math.pow(cosU1 * sinU2 - sinU1 * cosU2 * cosL, 2));
      if (sinSigma === 0) { return 0; }
      cosSigma = sinU1 * sinU2 + cosU1 * cosU2 * cosL;
      sigma = Math.atan2(sinSigma, cosSigma);
      var sinAlpha = cosU1 * cosU2 * sinL / sinSigma;
      cos2Alpha = 1 - sinAlpha * sinAlpha;
      cos2SigmaM = cos2Alpha ? cosSigma - 2 * sinU1 * sinU2 / cos2Alpha : 0;
      var C = F / 16 * cos2Alpha * (4 + F * (4 - 3 * cos2Alpha));
      prev = lambda;
      lambda = L1 + (1 - C) * F * sinAlpha * (sigma + C * sinSigma *
        (cos2SigmaM + C * cosSigma * (-1 + 2 * cos2SigmaM * cos2SigmaM)));
    } while (Math.abs(lambda - prev) > 1e-12 && ++iter < 200);
    if (iter >= 200) { return R_AUTHALIC * sigma; }
    var uSq = cos2Alpha * (A * A - B * B) / (B * B);
    var bigA = 1 + uSq / 16384 * (4096 + uSq * (-768 + uSq * (320 - 175 * uSq)));
    var bigB = uSq / 1024 * (256 + uSq * (-128 + uSq * (74 - 47 * uSq)));
    var dSigma = bigB * sinSigma * (cos2SigmaM + bigB / 4 * (cosSigma *
      (-1 + 2 * cos2SigmaM * cos2SigmaM) - bigB / 6 * cos2SigmaM *
      (-3 + 4 * sinSigma * sinSigma) * (-3 + 4 * cos2SigmaM * cos2SigmaM)));
    return B * bigA * (sigma - dSigma);
  }

  function pathLength(pts) {
    var d = 0;
    for (var i = 1; i < pts.length; i++) { d += distance(pts[i - 1], pts[i]); }
    return d;
  }

  var E2 = F * (2 - F), E = Math.sqrt(E2);
  function qAuthalic(sinPhi) {
    return (1 - E2) * (sinPhi / (1 - E2 * sinPhi * sinPhi) -
      Math.log((1 - E * sinPhi) / (1 + E * sinPhi)) / (2 * E));
  }
  var QP = qAuthalic(1);

  /* Points every <= 0.05 degrees along the great circle p -> q (p included, q not). */
  function densify(p, q) {
    var la1 = rad(p.lat), lo1 = rad(p.lng), la2 = rad(q.lat), lo2 = rad(q.lng);
    var a = [Math.cos(la1) * Math.cos(lo1), Math.cos(la1) * Math.sin(lo1), Math.sin(la1)];
    var b = [Math.cos(la2) * Math.cos(lo2), Math.cos(la2) * Math.sin(lo2), Math.sin(la2)];
    var omega = Math.acos(Math.max(-1, Math.min(1, a[0] * b[0] + a[1] * b[1] + a[2] * b[2])));
    var n = Math.max(1, Math.ceil(omega / rad(0.05))), out = [];
    for (var i = 0; i < n; i++) {
      var t = i / n, s0 = omega ? Math.sin((1 - t) * omega) / Math.sin(omega) : 1 - t;
      var s1 = omega ? Math.sin(t * omega) / Math.sin(omega) : t;
      var x = s0 * a[0] + s1 * b[0], y = s0 * a[1] + s1 * b[1], z = s0 * a[2] + s1 * b[2];
      out.push([Math.atan2(y, x), Math.atan2(z, Math.sqrt(x * x + y * y))]);
    }
    return out;
  }

  /* Area in m² of a simple polygon (L.LatLng ring, not closed) on WGS84: edges densified
   * along great circles, latitudes mapped to authalic latitudes, then the exact area of
   * each lat/lon trapezoid on the authalic sphere (R = 6371007.2 m). */
  function area(pts) {
    if (pts.length < 3) { return 0; }
    var ring = [];
    for (var i = 0; i < pts.length; i++) { ring = ring.concat(densify(pts[i], pts[(i + 1) % pts.length])); }
    var s = 0;
    for (var j = 0; j < ring.length; j++) {
      var p1 = ring[j], p2 = ring[(j + 1) % ring.length];
      var dl = p2[0] - p1[0];
      if (dl > Math.PI) { dl -= 2 * Math.PI; } else if (dl < -Math.PI) { dl += 2 * Math.PI; }
      s += dl * (qAuthalic(Math.sin(p1[1])) + qAuthalic(Math.sin(p2[1]))) / QP;
    }
    return Math.abs(s * R_AUTHALIC * R_AUTHALIC / 2);
  }

  function fmtLength(m, lang) {
    return m >= 1000 ? (m / 1000).toFixed(m >= 100000 ? 0 : 2) + (lang === "en" ? " km" : " 公里")
      : Math.round(m) + (lang === "en" ? " m" : " 米");
  }

  function fmtArea(m2, lang) {
    return m2 >= 1e6 ? (m2 / 1e6).toFixed(m2 >= 1e8 ? 0 : 2) + (lang === "en" ? " km²" : " 平方公里")
      : Math.round(m2) + (lang === "en" ? " m²" : " 平方米");
  }

  function create(map, opts) {
    var pane = opts.pane;
    var shapes = L.featureGroup().addTo(map);
    var style = {pane: pane, color: "#d7301f", weight: 2, fillOpacity: 0.06, interactive: false};
    var state = {kind: null, points: [], temp: null, start: null, pointer: null};
    var container = map.getContainer();

    function setActive(kind) {
      state.kind = kind;
      container.classList.toggle("bw-drawing", !!kind);
      if (kind) {
        map.dragging.disable();
        map.doubleClickZoom.disable();
      } else {
        map.dragging.enable();
        map.doubleClickZoom.enable();
      }
      if (opts.onMode) { opts.onMode(kind); }
    }

    function clearTemp() {
      if (state.temp) { shapes.removeLayer(state.temp); }
      state.temp = null;
      state.points = [];
      state.start = null;
      state.pointer = null;
    }

    function detach() {
      container.removeEventListener("pointerdown", onDown);
      container.removeEventListener("pointermove", onMove);
      container.removeEventListener("pointerup", onUp);
      container.removeEventListener("pointercancel", onCancelPointer);
      map.off("click", onClick);
      map.off("dblclick", onDblClick);
      map.off("mousemove", onHover);
    }

    function latlngOf(ev) { return map.mouseEventToLatLng(ev); }

    // ---- rectangle: pointer events (mouse, pen, touch)
    function onDown(ev) {
      if (state.kind !== "rect" || ev.button > 0 || state.pointer !== null) { return; }
      if (ev.target.closest && ev.target.closest(".leaflet-control")) { return; }
      ev.preventDefault();
      ev.stopPropagation();
      state.pointer = ev.pointerId;
      if (container.setPointerCapture) {
        try { container.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic */ }
      }
      state.start = latlngOf(ev);
      state.temp = L.rectangle([state.start, state.start], style).addTo(shapes);
    }
    function onMove(ev) {
      if (state.kind !== "rect" || ev.pointerId !== state.pointer || !state.start) { return; }
      ev.preventDefault();
      state.temp.setBounds(L.latLngBounds(state.start, latlngOf(ev)));
    }
    function onUp(ev) {
      if (state.kind !== "rect" || ev.pointerId !== state.pointer || !state.start) { return; }
      ev.preventDefault();
      var b = L.latLngBounds(state.start, latlngOf(ev));
      var pa = map.latLngToContainerPoint(b.getSouthWest());
      var pb = map.latLngToContainerPoint(b.getNorthEast());
      var rect = state.temp;
      state.temp = null;
      detach();
      setActive(null);
      state.start = null;
      state.pointer = null;
      if (Math.abs(pa.x - pb.x) < 4 || Math.abs(pa.y - pb.y) < 4) {
        shapes.removeLayer(rect);
        return;
      }
      shapes.clearLayers();
      L.rectangle(b, style).addTo(shapes);
      opts.onArea([b.getSouthWest(), b.getSouthEast(), b.getNorthEast(), b.getNorthWest()]);
    }
    function onCancelPointer() { if (state.kind === "rect") { cancel(); } }

    // ---- polygon and measuring: clicks (taps) add vertices
    function onClick(e) {
      if (!state.kind || state.kind === "rect") { return; }
      state.points.push(e.latlng);
      redrawPath(null);
    }
    function onDblClick(e) {
      if (e.originalEvent) { L.DomEvent.stop(e.originalEvent); }
      finish();
    }
    function onHover(e) { if (state.points.length) { redrawPath(e.latlng); } }

    function redrawPath(hover) {
      var pts = hover ? state.points.concat([hover]) : state.points;
      if (state.temp) { shapes.removeLayer(state.temp); }
      var closed = state.kind === "polygon" || state.kind === "measure-area";
      state.temp = (closed && pts.length > 2 ? L.polygon(pts, style) :
        L.polyline(pts, L.extend({dashArray: "4 4"}, style))).addTo(shapes);
      if (state.kind === "measure-line" || state.kind === "measure-area") {
        report(pts);
      }
    }

    function report(pts) {
      var text = state.kind === "measure-line" ? fmtLength(pathLength(pts), opts.lang) :
        fmtArea(area(pts), opts.lang) + " · " +
          fmtLength(pathLength(pts.concat(pts.length ? [pts[0]] : [])), opts.lang);
      var result = {kind: state.kind, points: pts.length, length_m: pathLength(pts),
                    area_m2: state.kind === "measure-area" ? area(pts) : null, text: text};
      if (opts.onMeasure) { opts.onMeasure(result); }
    }

    function start(kind) {
      cancel();
      shapes.clearLayers();
      setActive(kind);
      if (kind === "rect") {
        container.addEventListener("pointerdown", onDown);
        container.addEventListener("pointermove", onMove);
        container.addEventListener("pointerup", onUp);
        container.addEventListener("pointercancel", onCancelPointer);
      } else {
        map.on("click", onClick);
        map.on("dblclick", onDblClick);
        map.on("mousemove", onHover);
      }
    }

    function finish() {
      var kind = state.kind, pts = state.points.slice();
      if (!kind || kind === "rect") { return; }
      detach();
      setActive(null);
      clearTemp();
      if (kind === "polygon") {
        if (pts.length < 3) { return; }
        L.polygon(pts, style).addTo(shapes);
        opts.onArea(pts);
      } else {
        var closed = kind === "measure-area";
        if (pts.length < 2) { return; }
        (closed ? L.polygon(pts, style) : L.polyline(pts, style)).addTo(shapes);
        state.kind = kind;
        report(pts);
        state.kind = null;
      }
    }

    /* Stop whatever tool runs, drop its partial shape, give panning back. */
    function cancel() {
      var was = state.kind;
      detach();
      clearTemp();
      if (was) { setActive(null); }
      return was;
    }

    function onKey(ev) {
      if (ev.key === "Escape" && state.kind) {
        cancel();
        if (opts.onCancel) { opts.onCancel(); }
      }
    }
    document.addEventListener("keydown", onKey);

    return {
      start: start, finish: finish, cancel: cancel, shapes: shapes,
      active: function () { return state.kind; },
      clear: function () { cancel(); shapes.clearLayers(); },
      showPolygon: function (latlngs) {
        shapes.clearLayers();
        L.polygon(latlngs, style).addTo(shapes);
      }
    };
  }

  global.BasinWatchTools = {create: create, distance: distance, area: area,
                            pathLength: pathLength, fmtLength: fmtLength, fmtArea: fmtArea};
})(window);
