/* BasinWatch: start the served map from its JSON configuration block (no inline script). */
(function () {
  "use strict";
  var node = document.getElementById("bw-config");
  var cfg = JSON.parse(node.textContent);
  window.BasinWatchMap.init(document.getElementById("bw-map"), cfg);
})();
