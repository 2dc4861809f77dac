/* BasinWatch: enterprise tile worker. Decodes an MVT tile and paints its symbols into RGBA
 * pixels with the same code as the page (tiles.js: decode, paint), off the main thread.
 * Message in: {id, buf (ArrayBuffer), verdictIndex, fills, z, dpr, S}; out: {id, data,
 * pixels, rect (the dirty rectangle), decodeMs, drawMs} with the typed arrays and pixels transferred, not copied. */
/* global importScripts, BasinWatchTiles */
importScripts("../pbf/pbf.js", "tiles.js");
self.onmessage = function (e) {
  "use strict";
  var m = e.data;
  var out = BasinWatchTiles.render(m.buf, m.verdictIndex, m.fills, m.z, m.dpr, m.S);
  out.id = m.id;
  self.postMessage(out, BasinWatchTiles.transferables(out));
};
