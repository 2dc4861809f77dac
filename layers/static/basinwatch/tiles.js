/* BasinWatch: enterprise vector tiles (OGC API – Tiles, Mapbox Vector Tile) on canvas.
 *
 * BasinWatchTiles.layer(options) -> an L.GridLayer whose tiles are fetched from
 *   {api}/collections/enterprises/tiles/WebMercatorQuad/{z}/{y}/{x}?<filters>
 * decoded with the vendored `pbf` reader (only the point layer "enterprises": feature id,
 * properties verdict and n, one MoveTo per feature) into typed arrays, and drawn as circles
 * coloured by verdict: larger symbols (more enterprises in the same 4 px bin) first, so
 * smaller and rarer verdicts stay visible on top; at equal size stronger verdicts on top.
 * hit(latlng, px) finds the feature under a click (tiles keep their decoded arrays).
 * No inline styles: canvas drawing only; sizes via CSSOM.
 */
(function (global) {
  "use strict";

  var EXTENT_DEFAULT = 4096;

  // ---- MVT decoding (spec 2.1): Tile.layers=3; Layer name=1 features=2 keys=3 values=4
  // extent=5; Feature id=1 tags=2 type=3 geometry=4; Value string=1 float=2 double=3
  // int=4 uint=5 sint=6 bool=7.
  function readValue(tag, v, pbf) {
    if (tag === 1) { v.value = pbf.readString(); }
    else if (tag === 2) { v.value = pbf.readFloat(); }
    else if (tag === 3) { v.value = pbf.readDouble(); }
    else if (tag === 4) { v.value = pbf.readVarint64(); }
    else if (tag === 5) { v.value = pbf.readVarint(); }
    else if (tag === 6) { v.value = pbf.readSVarint(); }
    else if (tag === 7) { v.value = pbf.readBoolean(); }
  }

  function readFeature(tag, f, pbf) {
    if (tag === 1) { f.id = pbf.readVarint(); }
    else if (tag === 2) { f.tags = pbf.readPackedVarint([]); }
    else if (tag === 3) { f.type = pbf.readVarint(); }
    else if (tag === 4) { f.geom = pbf.readPackedVarint([]); }
  }

  function readLayer(tag, layer, pbf) {
    if (tag === 1) { layer.name = pbf.readString(); }
    else if (tag === 2) {
      layer.features.push(pbf.readMessage(readFeature, {id: 0, tags: null, type: 0, geom: null}));
    }
    else if (tag === 3) { layer.keys.push(pbf.readString()); }
    else if (tag === 4) { layer.values.push(pbf.readMessage(readValue, {value: null}).value); }
    else if (tag === 5) { layer.extent = pbf.readVarint(); }
  }

  function readTile(tag, tile, pbf) {
    if (tag === 3) {
      var layer = pbf.readMessage(readLayer, {name: "", features: [], keys: [], values: [],
                                              extent: EXTENT_DEFAULT});
      tile[layer.name] = layer;
    }
  }

  function unzig(n) { return (n >> 1) ^ -(n & 1); }

  /* Decode the "enterprises" layer into {x, y, v, n, id} typed arrays (tile units). */
  function decode(buffer, verdictIndex) {
    var empty = {count: 0, extent: EXTENT_DEFAULT};
    if (!buffer || !buffer.byteLength) { return empty; }
    var tile = new global.Pbf(new Uint8Array(buffer)).readFields(readTile, {});
    var layer = tile.enterprises;
    if (!layer) { return empty; }
    var kv = layer.keys.indexOf("verdict"), kn = layer.keys.indexOf("n");
    var feats = layer.features, count = feats.length;
    var out = {count: count, extent: layer.extent, x: new Float32Array(count),
               y: new Float32Array(count), v: new Int16Array(count), n: new Uint32Array(count),
               id: new Float64Array(count)};
    var unknown = Object.keys(verdictIndex).length;
    for (var i = 0; i < count; i++) {
      var f = feats[i], g = f.geom, t = f.tags;
      out.x[i] = unzig(g[1]);
      out.y[i] = unzig(g[2]);
      out.id[i] = f.id || 0;
      var vi = unknown, ni = 1;
      for (var j = 0; j + 1 < t.length; j += 2) {
        if (t[j] === kv) {
          var name = layer.values[t[j + 1]];
          vi = verdictIndex[name] === undefined ? unknown : verdictIndex[name];
        } else if (t[j] === kn) { ni = layer.values[t[j + 1]]; }
      }
      out.v[i] = vi;
      out.n[i] = ni;
    }
    return out;
  }

  /* Symbol radius in CSS px for n enterprises at zoom z (area grows with n, capped). */
  function radius(n, z) {
    var base = z < 9 ? 2.2 : (z < 12 ? 3.2 : (z < 15 ? 4.5 : 6));
    return Math.min(16, base + 1.1 * Math.sqrt(n - 1));
  }

  function drawTile(canvas, data, colours, z, dpr) {
    var ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, 256, 256);
    if (!data.count) { return; }
    var k = 256 / data.extent, order = new Array(data.count), i;
    var r = new Float32Array(data.count);
    for (i = 0; i < data.count; i++) { order[i] = i; r[i] = radius(data.n[i], z); }
    // big first; equal size: weaker verdict (higher index) first, stronger on top
    order.sort(function (a, b) { return (r[b] - r[a]) || (data.v[b] - data.v[a]); });
    ctx.lineWidth = 0.6;
    ctx.strokeStyle = "rgba(40,40,40,0.85)";
    var last = -1;
    for (var o = 0; o < order.length; o++) {
      i = order[o];
      var px = data.x[i] * k, py = data.y[i] * k, ri = r[i];
      if (px < -ri || py < -ri || px > 256 + ri || py > 256 + ri) { continue; }
      if (data.v[i] !== last) {
        last = data.v[i];
        ctx.fillStyle = colours[last] || "#cccccc";
      }
      ctx.beginPath();
      ctx.arc(px, py, ri, 0, 6.283185307179586);
      ctx.fill();
      if (z >= 9) { ctx.stroke(); }
    }
  }

  var EnterpriseTiles = L.GridLayer.extend({
    options: {tileSize: 256, updateWhenZooming: false, keepBuffer: 1, maxZoom: 22},

    initialize: function (opts) {
      L.GridLayer.prototype.initialize.call(this, opts);
      this._params = "";
      this._tiles_data = {};
      this.stats = {requests: 0, features: 0, bytes: 0, failed: 0};
    },

    setParams: function (query) {
      if (query === this._params) { return this; }
      this._params = query;
      if (this._map) { this.redraw(); }
      return this;
    },

    tileUrl: function (c) {
      return this.options.api + "/collections/enterprises/tiles/WebMercatorQuad/" + c.z + "/" +
        c.y + "/" + c.x + (this._params ? "?" + this._params : "");
    },

    createTile: function (coords, done) {
      var canvas = L.DomUtil.create("canvas", "bw-ent-tile");
      var dpr = global.devicePixelRatio || 1, self = this;
      canvas.width = 256 * dpr;
      canvas.height = 256 * dpr;
      canvas.style.width = "256px";
      canvas.style.height = "256px";
      var key = this._tileCoordsToKey(coords);
      var url = this.tileUrl(coords);
      this.stats.requests += 1;
      fetch(url, {headers: {"Accept": "application/vnd.mapbox-vector-tile"}})
        .then(function (r) {
          if (!r.ok) { throw new Error("HTTP " + r.status); }
          return r.arrayBuffer();
        })
        .then(function (buf) {
          self.stats.bytes += buf.byteLength;
          var data = decode(buf, self.options.verdictIndex);
          self.stats.features += data.count;
          data.z = coords.z;
          self._tiles_data[key] = data;
          drawTile(canvas, data, self.options.colours, coords.z, dpr);
          done(null, canvas);
        })
        .catch(function (err) {
          self.stats.failed += 1;
          self.fire("bwtileerror", {error: err, url: url});
          done(err, canvas);
        });
      return canvas;
    },

    _removeTile: function (key) {
      delete this._tiles_data[key];
      L.GridLayer.prototype._removeTile.call(this, key);
    },

    /* Features within `tol` CSS px of latlng at the current zoom: [{id, n, v, d}] nearest
     * first (from the decoded tiles; no request). */
    hit: function (latlng, tol) {
      var map = this._map;
      if (!map) { return []; }
      var z = Math.round(map.getZoom());
      var p = map.project(latlng, z);
      var out = [];
      var tx = Math.floor(p.x / 256), ty = Math.floor(p.y / 256);
      for (var dx = -1; dx <= 1; dx++) {
        for (var dy = -1; dy <= 1; dy++) {
          var data = this._tiles_data[(tx + dx) + ":" + (ty + dy) + ":" + z];
          if (!data || !data.count) { continue; }
          var k = 256 / data.extent, ox = (tx + dx) * 256, oy = (ty + dy) * 256;
          for (var i = 0; i < data.count; i++) {
            var fx = ox + data.x[i] * k, fy = oy + data.y[i] * k;
            // features in a tile's buffer belong to the neighbour: skip them here
            if (data.x[i] < 0 || data.y[i] < 0 || data.x[i] >= data.extent ||
                data.y[i] >= data.extent) { continue; }
            var d = Math.sqrt((fx - p.x) * (fx - p.x) + (fy - p.y) * (fy - p.y));
            if (d <= Math.max(tol, radius(data.n[i], z))) {
              out.push({id: data.id[i], n: data.n[i], v: data.v[i], d: d,
                        latlng: map.unproject(L.point(fx, fy), z)});
            }
          }
        }
      }
      out.sort(function (a, b) { return a.d - b.d || a.v - b.v; });
      return out;
    },

    /* Features drawn in the current view (for tests and benchmarks). */
    drawnFeatures: function () {
      var n = 0, self = this;
      Object.keys(this._tiles_data).forEach(function (k) { n += self._tiles_data[k].count; });
      return n;
    }
  });

  global.BasinWatchTiles = {
    layer: function (opts) { return new EnterpriseTiles(opts); },
    decode: decode,
    radius: radius
  };
})(window);
