// The site map on tiles (only when a tile server is configured; otherwise the page draws the
// sites server-side as an SVG grid and loads no script). Reads the points the page embedded as
// JSON and puts one circle marker per site, coloured by kind, with a popup linking to the site.
(function () {
  "use strict";

  function popupFor(point) {
    var box = document.createElement("div");
    var strong = document.createElement("strong");
    var link = document.createElement("a");
    link.href = point.url;
    link.textContent = point.code;
    strong.appendChild(link);
    box.appendChild(strong);
    box.appendChild(document.createElement("br"));
    box.appendChild(document.createTextNode(point.name));
    return box;
  }

  function start() {
    var box = document.getElementById("site-map");
    var data = document.getElementById("site-points");
    if (!box || !data || typeof L === "undefined") { return; }
    var points = JSON.parse(data.textContent || "[]");
    var map = L.map(box, { scrollWheelZoom: false });
    L.tileLayer(box.dataset.tileUrl, { attribution: box.dataset.attribution || "", maxZoom: 19 }).addTo(map);
    var bounds = [];
    points.forEach(function (point) {
      var at = [parseFloat(point.lat), parseFloat(point.lon)];
      L.circleMarker(at, { radius: 7, color: "#fff", weight: 1.5, fillColor: point.colour, fillOpacity: 0.9 })
        .bindPopup(popupFor(point))
        .bindTooltip(point.code, { permanent: true, direction: "right", offset: [8, 0] })
        .addTo(map);
      bounds.push(at);
    });
    if (bounds.length) {
      map.fitBounds(bounds, { padding: [30, 30], maxZoom: 14 });
    } else {
      map.setView([35, 105], 4);
    }
    box.dataset.ready = "true";
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
