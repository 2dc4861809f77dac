/* BasinWatch: enterprise vector tiles (OGC API – Tiles, Mapbox Vector Tile) on canvas.
 *
 * BasinWatchTiles.layer(options) -> an L.GridLayer of 1024 px tiles, each the WebMercatorQuad
 * tile two zooms up (same x, y) binned for 1024 px display (4 px bins, fewer requests: ~4
 * per view instead of ~10 at 512 px, so none waits for one of the browser's 6 connections):
 *   {api}/collections/enterprises/tiles/WebMercatorQuad/{z-2}/{y}/{x}?px=1024&<filters>
 * (options.tileSize or `tile=512|256` in the page's query: the tile one zoom up binned for
 * 512 px, or the WebMercatorQuad tile itself)
 * decoded with the vendored `pbf` reader (only the point layer "enterprises": feature id,
 * properties verdict and n, one MoveTo per feature) into typed arrays, and drawn as circles
 * coloured by verdict (written into the tile's pixels: see drawTile): larger symbols (more
 * enterprises in the same 4 px bin) first, so smaller and rarer verdicts stay visible on
 * top; at equal size stronger verdicts on top.
 * hit(latlng, px) finds the feature under a click (tiles keep their decoded arrays).
 * No inline styles: canvas drawing only; sizes via CSSOM.
 */
(function (global) {
  "use strict";

  var EXTENT_DEFAULT = 4096;

  // ---- MVT decoding (spec 2.1): Tile.layers=3; Layer name=1 features=2 keys=3 values=4
  // extent=5; Feature id=1 tags=2 type=3 geometry=4; Value string=1 float=2 double=3
  // int=4 uint=5 sint=6 bool=7. Read straight from the bytes with the vendored Pbf reader
  // (no object per feature): two passes over the layer, since values follow the features.
  function readValue(pbf, end) {
    var value = null;
    while (pbf.pos < end) {
      var val = pbf.readVarint(), tag = val >> 3;
      if (tag === 1) { value = pbf.readString(); }
      else if (tag === 2) { value = pbf.readFloat(); }
      else if (tag === 3) { value = pbf.readDouble(); }
      else if (tag === 4) { value = pbf.readVarint64(); }
      else if (tag === 5) { value = pbf.readVarint(); }
      else if (tag === 6) { value = pbf.readSVarint(); }
      else if (tag === 7) { value = pbf.readBoolean(); }
      else { pbf.skip(val); }
    }
    return value;
  }

  function unzig(n) { return (n >>> 1) ^ -(n & 1); }

  function decodeLayer(pbf, end, verdictIndex) {
    var name = "", keys = [], values = [], starts = [], extent = EXTENT_DEFAULT;
    while (pbf.pos < end) {
      var val = pbf.readVarint(), tag = val >> 3;
      if (tag === 1) { name = pbf.readString(); }
      else if (tag === 2) { var len = pbf.readVarint(); starts.push(pbf.pos, pbf.pos + len); pbf.pos += len; }
      else if (tag === 3) { keys.push(pbf.readString()); }
      else if (tag === 4) { var vend = pbf.readVarint() + pbf.pos; values.push(readValue(pbf, vend)); pbf.pos = vend; }
      else if (tag === 5) { extent = pbf.readVarint(); }
      else { pbf.skip(val); }
    }
    if (name !== "enterprises") { return null; }
    var count = starts.length / 2, kv = keys.indexOf("verdict"), kn = keys.indexOf("n");
    var unknown = Object.keys(verdictIndex).length;
    var vmap = values.map(function (v) {
      return verdictIndex[v] === undefined ? unknown : verdictIndex[v];
    });
    var out = {count: count, extent: extent, x: new Float32Array(count),
               y: new Float32Array(count), v: new Int16Array(count), n: new Uint32Array(count),
               id: new Float64Array(count)};
    for (var i = 0; i < count; i++) {
      pbf.pos = starts[2 * i];
      var fend = starts[2 * i + 1], vi = unknown, ni = 1, id = 0;
      while (pbf.pos < fend) {
        var fv = pbf.readVarint(), ft = fv >> 3;
        if (ft === 1) { id = pbf.readVarint(); }
        else if (ft === 2) {
          var tend = pbf.readVarint() + pbf.pos;
          while (pbf.pos < tend) {
            var k = pbf.readVarint(), x = pbf.readVarint();
            if (k === kv) { vi = vmap[x]; } else if (k === kn) { ni = values[x]; }
          }
        } else if (ft === 4) {
          var gend = pbf.readVarint() + pbf.pos;
          pbf.readVarint();  // MoveTo(1)
          out.x[i] = unzig(pbf.readVarint());
          out.y[i] = unzig(pbf.readVarint());
          pbf.pos = gend;
        } else { pbf.skip(fv); }
      }
      out.v[i] = vi;
      out.n[i] = ni;
      out.id[i] = id;
    }
    return out;
  }

  /* Decode the "enterprises" layer into {x, y, v, n, id} typed arrays (tile units). */
  function decode(buffer, verdictIndex) {
    var empty = {count: 0, extent: EXTENT_DEFAULT};
    if (!buffer || !buffer.byteLength) { return empty; }
    var pbf = new global.Pbf(new Uint8Array(buffer));
    while (pbf.pos < pbf.length) {
      var val = pbf.readVarint();
      if (val >> 3 === 3) {
        var end = pbf.readVarint() + pbf.pos;
        var layer = decodeLayer(pbf, end, verdictIndex);
        if (layer) { return layer; }
        pbf.pos = end;
      } else { pbf.skip(val); }
    }
    return empty;
  }

  /* Symbol radius in CSS px for n enterprises at zoom z (area grows with n, capped). */
  function radius(n, z) {
    var base = z < 9 ? 2.2 : (z < 12 ? 3.2 : (z < 15 ? 4.5 : 6));
    return Math.min(16, base + 1.1 * Math.sqrt(n - 1));
  }

  /* Group the tile's symbols for drawing: one group per (size, verdict), ordered from the
   * largest symbol to the smallest and, at equal size, weaker verdicts first so stronger
   * ones lie on top. Positions in CSS px of the tile; symbols wholly outside are dropped. */
  function groupSymbols(data, z, S) {
    var k = S / data.extent, groups = {}, keys = [], i;
    var x0 = S, y0 = S, x1 = 0, y1 = 0;  // CSS px box of what is drawn
    for (i = 0; i < data.count; i++) {
      var r = Math.round(radius(data.n[i], z) * 2) / 2;
      var px = data.x[i] * k, py = data.y[i] * k;
      if (px < -r || py < -r || px > S + r || py > S + r) { continue; }
      var key = r * 64 + data.v[i];  // sorted descending: weaker (higher index) first
      var g = groups[key];
      if (!g) { g = groups[key] = {r: r, v: data.v[i], xy: []}; keys.push(key); }
      g.xy.push(px, py);
      if (px - r < x0) { x0 = px - r; }
      if (py - r < y0) { y0 = py - r; }
      if (px + r > x1) { x1 = px + r; }
      if (py + r > y1) { y1 = py + r; }
    }
    keys.sort(function (a, b) { return b - a; });
    var out = keys.map(function (key) { return groups[key]; });
    out.box = [x0, y0, x1, y1];
    return out;
  }

  /* The device-pixel rectangle [x, y, w, h] of a W x H tile that a CSS px box touches
   * (2 px margin for the anti-aliased edge and outline), or null when empty. */
  function dirtyRect(box, dpr, W, H) {
    var x = Math.max(0, Math.floor(box[0] * dpr) - 2), y = Math.max(0, Math.floor(box[1] * dpr) - 2);
    var x1 = Math.min(W, Math.ceil(box[2] * dpr) + 2), y1 = Math.min(H, Math.ceil(box[3] * dpr) + 2);
    return x1 > x && y1 > y ? [x, y, x1 - x, y1 - y] : null;
  }

  // ---- software stamping. The tile's pixels are written directly (one putImageData per
  // tile): an opaque square per symbol on dense tiles, a pre-rasterised anti-aliased circle
  // with its outline (a "stamp" per size and colour, blended source-over) otherwise.
  // Measured in headless Chromium (software canvas), this is several times cheaper than
  // Skia paths of arcs or rects, whose rasterisation is deferred to the next frame.
  var OUTLINE = [40, 40, 40, 0.85], OUTLINE_W = 0.6;
  var rgbaMemo = {}, stampMemo = {};

  /* [r, g, b, a (0..1)] of a CSS colour (parsed by the canvas itself, once per colour). */
  function rgba(css) {
    var hit = rgbaMemo[css];
    if (hit) { return hit; }
    var c = document.createElement("canvas");
    c.width = 1; c.height = 1;
    var ctx = c.getContext("2d", {willReadFrequently: true});
    ctx.fillStyle = css;
    ctx.fillRect(0, 0, 1, 1);
    var d = ctx.getImageData(0, 0, 1, 1).data;
    hit = rgbaMemo[css] = [d[0], d[1], d[2], d[3] / 255];
    return hit;
  }

  /* A circle of radius r device px centred on a pixel corner, filled with `fill` and
   * outlined (width w px) when w > 0, for a W px wide canvas: coverage from the distance
   * of each pixel centre to the circle (1 px ramp); opaque pixels as offsets to write the
   * packed colour at, the others as offsets with a premultiplied colour to blend. */
  function stamp(r, fill, w, W) {
    var key = r + "|" + fill.join(",") + "|" + w + "|" + W, hit = stampMemo[key];
    if (hit) { return hit; }
    var R = Math.ceil(r + w / 2 + 1), opaque = [], ox = [], oy = [], dx = [], dy = [],
      pr = [], pg = [], pb = [], pa = [];
    for (var j = -R; j < R; j++) {
      for (var i = -R; i < R; i++) {
        var d = Math.sqrt((i + 0.5) * (i + 0.5) + (j + 0.5) * (j + 0.5));
        var cf = Math.max(0, Math.min(1, r - d + 0.5)) * fill[3];
        var a = cf, cr = fill[0] * cf, cg = fill[1] * cf, cb = fill[2] * cf, co = 0;
        if (w > 0) {
          // the ring [r - w/2, r + w/2] seen through a 1 px box along the radius; thinner
          // than a pixel, a 1 px ring at w's opacity (how the canvas draws hairlines)
          co = (w < 1 ? w * Math.max(0, 1 - Math.abs(d - r))
                : Math.max(0, Math.min(d + 0.5, r + w / 2) - Math.max(d - 0.5, r - w / 2))) *
            OUTLINE[3];
          cr = OUTLINE[0] * co + cr * (1 - co); cg = OUTLINE[1] * co + cg * (1 - co);
          cb = OUTLINE[2] * co + cb * (1 - co); a = co + a * (1 - co);
        }
        if (a <= 0.002) { continue; }
        if (cf >= 0.998 && co <= 0.002) {  // the fill colour alone
          opaque.push(j * W + i); ox.push(i); oy.push(j);
          continue;
        }
        dx.push(i); dy.push(j); pr.push(cr); pg.push(cg); pb.push(cb); pa.push(a);
      }
    }
    hit = stampMemo[key] = {R: R, colour: packed(fill), opaque: Int32Array.from(opaque),
      ox: Int16Array.from(ox), oy: Int16Array.from(oy),
      dx: Int16Array.from(dx), dy: Int16Array.from(dy), r: Float32Array.from(pr),
      g: Float32Array.from(pg), b: Float32Array.from(pb), a: Float32Array.from(pa)};
    // the blended pixels as offsets, and as the packed pixel they leave on a transparent
    // destination (blend's formula with da = 0, rounded by the same clamped bytes)
    // and, on an opaque destination, blend's da (1 - sa) when its oa is exactly 1 (the
    // division by oa then changes nothing and is skipped), else -1 (the general formula)
    var n = hit.a.length, one = new Uint8ClampedArray(4), oneU32 = new Uint32Array(one.buffer);
    hit.off = new Int32Array(n);
    hit.onClear = new Uint32Array(n);
    hit.onOpaque = new Float64Array(n);
    for (var q = 0; q < n; q++) {
      var sa = hit.a[q], da1 = 255 / 255 * (1 - sa);
      hit.off[q] = hit.dy[q] * W + hit.dx[q];
      one[0] = hit.r[q] / sa; one[1] = hit.g[q] / sa; one[2] = hit.b[q] / sa; one[3] = sa * 255;
      hit.onClear[q] = oneU32[0];
      hit.onOpaque[q] = sa + da1 === 1 ? da1 : -1;
    }
    return hit;
  }

  /* Source-over of a stamp at pixel (cx, cy) into unpremultiplied RGBA (px, and u32 over
   * the same bytes). */
  function blend(px, u32, W, H, st, cx, cy) {
    var q, x, y, o, sa, da, oa, base = cy * W + cx, op = st.opaque, c = st.colour;
    if (cx >= st.R && cy >= st.R && cx + st.R <= W && cy + st.R <= H) {
      for (q = 0; q < op.length; q++) { u32[base + op[q]] = c; }
      var off = st.off, clear = st.onClear, onOpaque = st.onOpaque, sr = st.r, sg = st.g,
        sb = st.b, sA = st.a, A;
      for (q = 0; q < off.length; q++) {  // wholly inside: no clipping
        o = (base + off[q]) * 4; A = px[o + 3];
        if (A === 0) { u32[base + off[q]] = clear[q]; continue; }
        if (A === 255 && (da = onOpaque[q]) >= 0) {  // oa = 1: alpha stays 255
          px[o] = sr[q] + px[o] * da;
          px[o + 1] = sg[q] + px[o + 1] * da;
          px[o + 2] = sb[q] + px[o + 2] * da;
          continue;
        }
        sa = sA[q]; da = A / 255 * (1 - sa); oa = sa + da;
        px[o] = (sr[q] + px[o] * da) / oa;
        px[o + 1] = (sg[q] + px[o + 1] * da) / oa;
        px[o + 2] = (sb[q] + px[o + 2] * da) / oa;
        px[o + 3] = oa * 255;
      }
      return;
    } else {
      for (q = 0; q < op.length; q++) {  // near the edge: clip pixel by pixel
        x = cx + st.ox[q]; y = cy + st.oy[q];
        if (x >= 0 && y >= 0 && x < W && y < H) { u32[base + op[q]] = c; }
      }
    }
    for (q = 0; q < st.a.length; q++) {
      x = cx + st.dx[q]; y = cy + st.dy[q];
      if (x < 0 || y < 0 || x >= W || y >= H) { continue; }
      o = (y * W + x) * 4; sa = st.a[q];
      da = px[o + 3] / 255 * (1 - sa); oa = sa + da;
      px[o] = (st.r[q] + px[o] * da) / oa;
      px[o + 1] = (st.g[q] + px[o + 1] * da) / oa;
      px[o + 2] = (st.b[q] + px[o + 2] * da) / oa;
      px[o + 3] = oa * 255;
    }
  }

  /* Opaque squares of side 2h device px centred on (x, y): 32-bit writes. */
  function squares(u32, W, H, xy, h, d, colour) {
    for (var q = 0; q < xy.length; q += 2) {
      var x0 = Math.max(0, Math.round(xy[q] * d - h)), x1 = Math.min(W, Math.round(xy[q] * d + h));
      var y0 = Math.max(0, Math.round(xy[q + 1] * d - h));
      var y1 = Math.min(H, Math.round(xy[q + 1] * d + h));
      for (var y = y0; y < y1; y++) {
        for (var o = y * W + x0, e = y * W + x1; o < e; o++) { u32[o] = colour; }
      }
    }
  }

  var LITTLE = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  function packed(c) {
    var a = Math.round(c[3] * 255);
    return LITTLE ? ((a << 24) | (c[2] << 16) | (c[1] << 8) | c[0]) >>> 0
                  : ((c[0] << 24) | (c[1] << 16) | (c[2] << 8) | a) >>> 0;
  }

  /* One ImageData reused by every tile of a size (putImageData copies it): no 1 MB
   * allocation per tile. */
  var scratchImg = null, scratchU32 = null;
  function scratch(ctx, W, H) {
    if (!scratchImg || scratchImg.width !== W || scratchImg.height !== H) {
      scratchImg = ctx.createImageData(W, H);
      scratchU32 = new Uint32Array(scratchImg.data.buffer);
    }
    return scratchImg;
  }

  /* Write a tile's symbols into RGBA pixels `px` (u32: the same bytes) of W x H device px
   * (see groupSymbols for the order): no DOM, so a worker can do it. `fills[v]`: the
   * [r, g, b, a] of verdict index v (GREY when absent). Dense tiles (symbols touching) draw
   * opaque squares of the circle's area without outlines; the others anti-aliased circles,
   * outlined from zoom 9. DENSE is per 256 px of tile side: a 1024 px tile is dense from
   * 16 times as many symbols (the same symbols per screen area). */
  var DENSE = 2000, GREY = [204, 204, 204, 1];
  /* Returns the dirty rectangle [x, y, w, h] in device px (null: nothing drawn): only it is
   * cleared (``fresh``: the pixels are all zero already, nothing to clear) and need be put
   * on the canvas. */
  function paint(px, u32, W, H, data, fills, z, dpr, S, fresh) {
    var groups = groupSymbols(data, z, S);
    var dense = data.count > DENSE * (S / 256) * (S / 256), w = z >= 9 && !dense ? OUTLINE_W * dpr : 0;
    var rect = dirtyRect(groups.box, dpr, W, H);
    if (!fresh) { u32.fill(0); }
    for (var j = 0; j < groups.length; j++) {
      var grp = groups[j], fill = fills[grp.v] || GREY;
      if (dense) {
        squares(u32, W, H, grp.xy, grp.r * 0.886 * dpr, dpr, packed(fill));
        continue;
      }
      var st = stamp(grp.r * dpr, fill, w, W), xy = grp.xy;
      for (var q = 0; q < xy.length; q += 2) {
        blend(px, u32, W, H, st, Math.round(xy[q] * dpr), Math.round(xy[q + 1] * dpr));
      }
    }
    return rect;
  }

  /* [r, g, b, a] per verdict index of CSS colours (parsed by the page's canvas). */
  function fillsOf(colours) {
    return colours.map(function (c) { return rgba(c || "#cccccc"); });
  }

  /* Draw a tile on its canvas (main thread; see paint). */
  function drawTile(canvas, data, colours, z, dpr, size) {
    var S = size || 256, W = canvas.width, H = canvas.height;
    var ctx = canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    if (!data.count) { ctx.clearRect(0, 0, W, H); return; }
    var img = scratch(ctx, W, H);
    ctx.clearRect(0, 0, W, H);
    var rect = paint(img.data, scratchU32, W, H, data, fillsOf(colours), z, dpr, S);
    if (rect) { ctx.putImageData(img, 0, 0, rect[0], rect[1], rect[2], rect[3]); }
  }

  /* Decode and paint a tile off the page (the worker's job, also run on the main thread
   * when workers are unavailable): {data, pixels (RGBA bytes or null when empty), decodeMs,
   * drawMs}. */
  function render(buf, verdictIndex, fills, z, dpr, S) {
    var t0 = performance.now(), data = decode(buf, verdictIndex), t1 = performance.now();
    var W = Math.round(S * dpr), pixels = null, rect = null;
    if (data.count) {
      pixels = new Uint8ClampedArray(W * W * 4);  // zeroed: nothing to clear
      rect = paint(pixels, new Uint32Array(pixels.buffer), W, W, data, fills, z, dpr, S, true);
    }
    return {data: data, pixels: pixels, rect: rect, decodeMs: t1 - t0,
            drawMs: performance.now() - t1};
  }

  /* Buffers of a render result that postMessage can move instead of copy. */
  function transferables(out) {
    var d = out.data, list = out.pixels ? [out.pixels.buffer] : [];
    ["x", "y", "v", "n", "id"].forEach(function (k) { if (d[k]) { list.push(d[k].buffer); } });
    return list;
  }

  // ---- workers (opt-in: `workers=1` in the page's query, or BasinWatchTiles.useWorkers()):
  // tiles are decoded and painted off the main thread by a small pool (the page keeps
  // fetching, so Resource Timing and the browser cache see every tile), and the main thread
  // only copies the finished pixels (putImageData). Any worker failure puts the layer back on
  // the main-thread path. Not the default: on a quiet 2-core machine with 1M enterprises the
  // pan/zoom tour was slower with the pool (p50 172 vs 124 ms, p95 383 vs 359 ms;
  // BENCHMARKS.md "Web map"), the workers competing with the server for the cores.
  var SCRIPT = global.document && global.document.currentScript ?
    global.document.currentScript.src : null;
  var POOL = null, JOB = 0;
  var POOL_BROKEN = !(global.location && /[?&]workers=1(&|$)/.test(global.location.search || ""));

  function pool() {
    if (POOL || POOL_BROKEN) { return POOL; }
    if (!SCRIPT || typeof global.Worker !== "function") { POOL_BROKEN = true; return null; }
    var size = Math.max(1, Math.min(2, (global.navigator && global.navigator.hardwareConcurrency) || 2));
    try {
      POOL = [];
      for (var i = 0; i < size; i++) {
        var w = new global.Worker(SCRIPT.replace(/tiles\.js(\?.*)?$/, "tile_worker.js"));
        w.bwJobs = {};
        w.bwLoad = 0;
        w.onmessage = onResult;
        w.onerror = onWorkerError;
        POOL.push(w);
      }
    } catch (e) {
      POOL = null; POOL_BROKEN = true;
    }
    return POOL;
  }

  function onResult(e) {
    var job = this.bwJobs[e.data.id];
    if (!job) { return; }
    delete this.bwJobs[e.data.id];
    this.bwLoad -= 1;
    job.resolve(e.data);
  }

  function onWorkerError(e) {
    if (e && e.preventDefault) { e.preventDefault(); }
    POOL_BROKEN = true;
    var jobs = [];
    (POOL || []).forEach(function (w) {
      Object.keys(w.bwJobs).forEach(function (id) { jobs.push(w.bwJobs[id]); });
      w.bwJobs = {};
      w.terminate();
    });
    POOL = null;
    jobs.forEach(function (job) {
      var m = job.msg, out = render(job.buf, m.verdictIndex, m.fills, m.z, m.dpr, m.S);
      out.mainThread = true;
      job.resolve(out);
    });
  }

  /* Promise of render(...) in the least busy worker (the main thread when none). The buffer
   * is copied to the worker (kept for the fallback). */
  function renderAsync(buf, verdictIndex, fills, z, dpr, S) {
    var workers = pool();
    if (!workers) {
      var out = render(buf, verdictIndex, fills, z, dpr, S);
      out.mainThread = true;
      return Promise.resolve(out);
    }
    var w = workers.reduce(function (a, b) { return b.bwLoad < a.bwLoad ? b : a; });
    var id = ++JOB, msg = {id: id, buf: buf, verdictIndex: verdictIndex, fills: fills, z: z,
                           dpr: dpr, S: S};
    return new Promise(function (resolve) {
      w.bwJobs[id] = {resolve: resolve, buf: buf, msg: msg};
      w.bwLoad += 1;
      w.postMessage(msg);
    });
  }

  if (!global.L) {  // in a worker: answer render requests
    global.BasinWatchTiles = {decode: decode, render: render, transferables: transferables};
    return;
  }

  var EnterpriseTiles = L.GridLayer.extend({
    options: {tileSize: 1024, updateWhenZooming: false, keepBuffer: 1, maxZoom: 22, minZoom: 2},

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
      var S = this.options.tileSize, up = S >= 1024 ? 2 : (S >= 512 ? 1 : 0);
      return this.options.api + "/collections/enterprises/tiles/WebMercatorQuad/" + (c.z - up) +
        "/" + c.y + "/" + c.x + "?px=" + S + (this._params ? "&" + this._params : "");
    },

    createTile: function (coords, done) {
      var canvas = L.DomUtil.create("canvas", "bw-ent-tile");
      var dpr = global.devicePixelRatio || 1, self = this;
      var S = this.options.tileSize;
      canvas.width = S * dpr;
      canvas.height = S * dpr;
      canvas.style.width = S + "px";
      canvas.style.height = S + "px";
      var key = this._tileCoordsToKey(coords);
      if (this._held) {  // the data version is not known yet: fetch once it is (release)
        this._held.push(function () {
          if (self._tiles[key] && self._tiles[key].el === canvas) { self._fetch(coords, key, canvas, done); }
        });
        return canvas;
      }
      this._fetch(coords, key, canvas, done);
      return canvas;
    },

    /* Hold tile requests until release(query): the page asks /map/meta for the data version
     * first, so the first view's tiles are requested once, with the versioned URL the
     * browser may cache, instead of once without it and again with it. */
    hold: function () {
      if (!this._held) { this._held = []; }
      return this;
    },

    release: function (query) {
      var held = this._held;
      if (!held) { return this.setParams(query); }
      this._held = null;
      this._params = query;
      held.forEach(function (fn) { fn(); });
      return this;
    },

    _fetch: function (coords, key, canvas, done) {
      var self = this, dpr = global.devicePixelRatio || 1, S = this.options.tileSize;
      var url = this.tileUrl(coords), t0 = performance.now();
      this.stats.requests += 1;
      fetch(url, {headers: {"Accept": "application/vnd.mapbox-vector-tile"}})
        .then(function (r) {
          if (!r.ok) { throw new Error("HTTP " + r.status); }
          return r.arrayBuffer();
        })
        .then(function (buf) {
          var t1 = performance.now();
          self.stats.bytes += buf.byteLength;
          if (!self._fills) { self._fills = fillsOf(self.options.colours); }
          if (!pool()) {
            // main thread: decode, paint into the shared scratch pixels and put them on the
            // canvas at once (drawTile), not into a new 4 MB buffer per tile
            var d0 = performance.now(), dec = decode(buf, self.options.verdictIndex),
              d1 = performance.now();
            if (dec.count) { drawTile(canvas, dec, self.options.colours, coords.z, dpr, S); }
            return [t1, {data: dec, pixels: null, put: true, mainThread: true,
                         decodeMs: d1 - d0, drawMs: performance.now() - d1}];
          }
          return renderAsync(buf, self.options.verdictIndex, self._fills, coords.z, dpr, S)
            .then(function (out) { return [t1, out]; });
        })
        .then(function (res) {
          var t1 = res[0], out = res[1], data = out.data, t2 = performance.now();
          self.stats.features += data.count;
          data.z = coords.z;
          if (self._tiles[key] && self._tiles[key].el === canvas) { self._tiles_data[key] = data; }
          var ctx = canvas.getContext("2d"), W = canvas.width;
          if (out.pixels && out.pixels.length === W * canvas.height * 4) {
            // only the rectangle with symbols (a new canvas is transparent elsewhere)
            var rc = out.rect || [0, 0, W, canvas.height];
            ctx.putImageData(new ImageData(out.pixels, W, canvas.height), 0, 0,
                             rc[0], rc[1], rc[2], rc[3]);
          } else if (out.put) {  // already on the canvas (main thread)
          } else if (data.count) {  // canvas size not the one painted (dpr changed)
            drawTile(canvas, data, self.options.colours, coords.z, dpr, S);
          } else { ctx.clearRect(0, 0, W, canvas.height); }
          var t3 = performance.now();
          // main-thread time only (the worker's own time in workerMs)
          self.stats.drawMs = (self.stats.drawMs || 0) + (t3 - t2);
          if (out.mainThread) {
            self.stats.decodeMs = (self.stats.decodeMs || 0) + out.decodeMs;
            self.stats.drawMs += out.drawMs;
          } else {
            self.stats.workerMs = (self.stats.workerMs || 0) + out.decodeMs + out.drawMs;
          }
          self.stats.lastDone = t3;
          if (self.stats.log) {  // per-tile timeline (benchmarks): fetch, bytes, decoded, drawn
            self.stats.log.push({url: url, fetch: t0, bytes: t1, decoded: t2, drawn: t3});
          }
          done(null, canvas);
        })
        .catch(function (err) {
          self.stats.failed += 1;
          self.fire("bwtileerror", {error: err, url: url});
          done(err, canvas);
        });
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
      var z = Math.round(map.getZoom()), S = this.options.tileSize;
      var p = map.project(latlng, z);
      var out = [];
      var tx = Math.floor(p.x / S), ty = Math.floor(p.y / S);
      for (var dx = -1; dx <= 1; dx++) {
        for (var dy = -1; dy <= 1; dy++) {
          var data = this._tiles_data[(tx + dx) + ":" + (ty + dy) + ":" + z];
          if (!data || !data.count) { continue; }
          var k = S / data.extent, ox = (tx + dx) * S, oy = (ty + dy) * S;
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

  /* Tile size asked for in the page's query (`tile=256|512|1024`), else null. */
  function pageTileSize() {
    var m = global.location && /[?&]tile=(256|512|1024)(&|$)/.exec(global.location.search || "");
    return m ? +m[1] : null;
  }

  global.BasinWatchTiles = {
    layer: function (opts) {
      var size = (opts && opts.tileSize) || pageTileSize();
      return new EnterpriseTiles(size ? L.extend({}, opts, {tileSize: size}) : opts);
    },
    decode: decode,
    radius: radius,
    render: render,
    renderAsync: renderAsync,
    fills: fillsOf,
    workers: function () { return pool() ? pool().length : 0; },
    /* Decode and paint in the worker pool from now on (benchmarks compare both paths). */
    useWorkers: function () {
      if (!POOL) { POOL_BROKEN = false; }
      return pool() ? pool().length : 0;
    },
    /* Decode and paint on the main thread from now on (the default). */
    noWorkers: function () {
      (POOL || []).forEach(function (w) { w.terminate(); });
      POOL = null; POOL_BROKEN = true;
    },
    _draw: drawTile
  };
})(typeof window !== "undefined" ? window : self);
