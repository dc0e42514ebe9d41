// The sampler's phone page: every entry gets its id on the phone (so a repeated send is recorded
// once), is kept in IndexedDB until the server has it, and is sent in order when online. A
// refusal stops the queue at that entry with the server's message; the sampler fixes and resends
// it, or discards it. Nothing is lost on reload. Camera scanning loads html5-qrcode only when asked.
(function () {
  "use strict";

  var doc = document;
  var body = doc.body;
  var USER = body.dataset.user || "";
  var QUEUE_ID = "envirolims-field";
  var texts = {};
  doc.querySelectorAll("#texts [data-k]").forEach(function (el) { texts[el.dataset.k] = el.textContent; });

  function t(key, vars) {
    var text = texts[key] || key;
    Object.keys(vars || {}).forEach(function (name) { text = text.split("{" + name + "}").join(String(vars[name])); });
    return text;
  }

  function el(tag, attrs, children) {
    var node = doc.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") { node.textContent = attrs[name]; } else { node.setAttribute(name, attrs[name]); }
    });
    (children || []).forEach(function (child) { if (child) { node.appendChild(child); } });
    return node;
  }

  // A v4 UUID; crypto.randomUUID exists only in secure contexts (a lab server on plain http
  // still has getRandomValues).
  function newId() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  var counter = 0;
  function newKey() {  // sorts in the order entries were made
    counter += 1;
    return String(Date.now()).padStart(15, "0") + "-" + String(counter).padStart(4, "0") + "-" + newId().slice(0, 8);
  }

  function csrf() {
    var meta = doc.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function clock(iso) {
    var d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  // ------------------------------------------------------------ storage (IndexedDB via idb-keyval)

  var KV = window.idbKeyval;
  var store = null;
  var memory = new Map();
  try {
    if (KV && window.indexedDB) { store = KV.createStore(QUEUE_ID, "queue"); }
  } catch (e) { store = null; }

  function all() {
    var got = store ? KV.entries(store).then(function (rows) { return rows.map(function (r) { return r[1]; }); })
      : Promise.resolve(Array.from(memory.values()));
    return got.then(function (items) {
      return items.sort(function (a, b) { return a.key < b.key ? -1 : a.key > b.key ? 1 : 0; });
    }).catch(function () { return Array.from(memory.values()); });
  }

  function put(item) {
    if (!store) { memory.set(item.key, item); return Promise.resolve(); }
    return KV.set(item.key, item, store).catch(function () {
      store = null; memory.set(item.key, item); warnStorage();
    });
  }

  function drop(key) {
    memory.delete(key);
    return store ? KV.del(key, store) : Promise.resolve();
  }

  var channel = window.BroadcastChannel ? new BroadcastChannel(QUEUE_ID) : null;
  function changed() { if (channel) { channel.postMessage("changed"); } return render(); }
  if (channel) { channel.onmessage = function () { render(); }; }

  function warnStorage() {
    var note = doc.getElementById("queue-note");
    if (note) { note.textContent = t("no_storage"); note.className = "flash bad"; }
  }

  var askedPersist = false;
  function enqueue(item) {
    item.key = newKey();
    item.user = USER;
    item.status = "waiting";
    item.created = new Date().toISOString();
    if (!askedPersist && navigator.storage && navigator.storage.persist) {
      askedPersist = true;
      navigator.storage.persist().catch(function () {});
    }
    return put(item).then(changed).then(function () { pump(); });
  }

  // ------------------------------------------------------------ sending, in order

  var pumping = false;
  var retryTimer = null;
  var failures = 0;
  var blocked = "";  // "", "auth": the session ended, sign in again

  function classify(response) {
    if (response.ok) {
      return response.json().catch(function () { return {}; }).then(function (data) { return { outcome: "ok", data: data }; });
    }
    if (response.status === 408 || response.status === 429 || response.status >= 500) {
      return Promise.resolve({ outcome: "retry" });
    }
    return response.json().catch(function () { return {}; }).then(function (problem) {
      if (response.status === 401) { return { outcome: "auth" }; }
      if (problem.code === "csrf_failed") { return { outcome: "csrf" }; }
      return {
        outcome: "refused",
        error: { code: problem.code || "http_" + response.status, detail: problem.detail || t("unknown_error", { status: response.status }) },
      };
    });
  }

  function transmit(item) {
    var headers = { "Accept": "application/json", "X-CSRF-Token": csrf() };
    var request;
    if (item.type === "photo") {
      var form = new FormData();
      form.append("client_id", item.client_id);
      form.append("sample_no", item.sample_no);
      form.append("caption", item.caption || "");
      form.append("reason", item.reason || "");
      form.append("photo", item.blob, item.filename || "photo.jpg");
      request = { method: "POST", headers: headers, body: form, credentials: "same-origin" };
    } else {
      headers["Content-Type"] = "application/json";
      request = { method: "POST", headers: headers, body: JSON.stringify(item.body), credentials: "same-origin" };
    }
    return fetch(item.type === "photo" ? "/field/photos" : "/field/entries", request)
      .then(classify, function () { return { outcome: "retry" }; });
  }

  // A 403 csrf_failed after signing in again in another tab: take the session's new token.
  function refreshToken() {
    return fetch("/field", { headers: { "Accept": "text/html" }, credentials: "same-origin" }).then(function (r) {
      if (!r.ok || r.redirected) { return false; }
      return r.text().then(function (html) {
        var meta = new DOMParser().parseFromString(html, "text/html").querySelector('meta[name="csrf-token"]');
        if (!meta || !meta.content || meta.content === csrf()) { return false; }
        doc.querySelector('meta[name="csrf-token"]').content = meta.content;
        return true;
      });
    }).catch(function () { return false; });
  }

  var lastFailure = "";
  function scheduleRetry() {
    clearTimeout(retryTimer);
    failures += 1;
    lastFailure = new Date().toISOString();
    retryTimer = setTimeout(pump, Math.min(60000, 1000 * Math.pow(2, Math.min(failures, 6))));
  }

  // One tab sends at a time (the queue is shared by the tabs of this browser).
  function pump() {
    if (pumping || !navigator.onLine) { return Promise.resolve(); }
    if (navigator.locks && navigator.locks.request) {
      return navigator.locks.request(QUEUE_ID, { ifAvailable: true }, function (lock) { return lock ? drain() : null; })
        .catch(function () { return drain(); });
    }
    return drain();
  }

  async function drain() {
    if (pumping) { return; }
    pumping = true;
    var sent = false;
    var tokenRefreshed = false;
    try {
      for (;;) {
        var items = await all();
        var head = items.filter(function (i) { return i.user === USER; })[0];
        if (!head || head.status === "refused") { break; }
        head.status = "sending";
        render(items);
        var result = await transmit(head);
        head = (await all()).filter(function (i) { return i.key === head.key; })[0];
        if (!head) { continue; }  // discarded meanwhile (another tab)
        if (result.outcome === "ok") {
          failures = 0;
          blocked = "";
          sent = true;
          notice = result.data && result.data.notice ? result.data.notice.message : "";
          await drop(head.key);
          await changed();
          continue;
        }
        if (result.outcome === "csrf" && !tokenRefreshed) {
          tokenRefreshed = true;
          if (await refreshToken()) { continue; }
          result.outcome = "auth";
        }
        if (result.outcome === "auth") {
          blocked = "auth";
          head.status = "waiting";
          await put(head);
          break;
        }
        if (result.outcome === "refused") {
          head.status = "refused";
          head.error = result.error;
          await put(head);
          openList(true);
          await changed();
          window.scrollTo(0, 0);  // the list sits at the top of the page, under the bar
          break;
        }
        head.status = "waiting";  // network trouble: try again later, same id
        await put(head);
        scheduleRetry();
        break;
      }
    } finally {
      pumping = false;
      await changed();
      if (sent) { refreshLive(); }
    }
  }

  var notice = "";  // what the server wanted the sampler to know about the last entry sent

  window.addEventListener("online", function () { failures = 0; render(); pump(); });
  window.addEventListener("offline", function () { render(); });
  setInterval(function () { if (!pumping) { pump(); } }, 30000);
  doc.addEventListener("visibilitychange", function () { if (!doc.hidden) { pump(); } });

  // ------------------------------------------------------------ the queue panel

  var FIX_FIELDS = {
    container: ["barcode"],
    field_test: ["parameter", "value", "unit", "instrument"],
    observation: ["weather", "air_temperature", "observations"],
    sampling: ["justification"],
    photo: ["caption"],
  };

  function openList(open) {
    var list = doc.getElementById("queue-list");
    var toggle = doc.getElementById("queue-toggle");
    if (!list || !toggle) { return; }
    list.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    toggle.textContent = open ? t("hide") : t("list");
  }

  function queueItem(item, isHead) {
    var kind = item.type === "photo" ? "photo" : item.body.kind;
    var state = item.status === "refused" ? el("span", { "class": "badge bad", text: t("status_refused") })
      : item.status === "sending" ? el("span", { "class": "badge wait", text: t("sending") })
        : el("span", { "class": "badge wait", text: t("status_waiting") });
    var li = el("li", { "class": item.status, "data-key": item.key, "data-kind": kind }, [
      el("div", {}, [el("strong", { text: item.label || kind }), doc.createTextNode(" "), state]),
      el("div", { "class": "small muted", text: [item.sample_no, clock(item.created)].filter(Boolean).join(" · ") }),
    ]);
    if (item.type === "photo" && item.blob) {
      var img = el("img", { alt: item.filename || "" });
      img.src = URL.createObjectURL(item.blob);
      img.onload = function () { URL.revokeObjectURL(img.src); };
      li.appendChild(img);
    }
    if (item.status === "refused") {
      li.appendChild(el("p", { "class": "why", role: "alert", "data-code": item.error.code, text: item.error.detail }));
      var fix = el("div", { "class": "fix-fields" });
      var holder = item.type === "photo" ? item : item.body;
      var names = (FIX_FIELDS[kind] || []).slice();
      if (holder.reason || item.error.code === "reason_required_after_signing") { names.push("reason"); }
      names.forEach(function (name) {
        var id = "fix-" + item.key + "-" + name;
        var value = holder[name];
        var input = el("input", { id: id, name: name, value: value == null ? "" : String(value), autocomplete: "off" });
        fix.appendChild(el("label", { "for": id, text: t("f_" + name) }));
        fix.appendChild(input);
      });
      li.appendChild(fix);
      li.appendChild(el("div", { "class": "acts" }, [
        el("button", { type: "button", "data-act": "resend", text: t("resend") }),
        el("button", { type: "button", "class": "danger", "data-act": "discard", text: t("discard") }),
      ]));
    } else if (!isHead || item.status !== "sending") {
      li.appendChild(el("div", { "class": "acts" }, [
        el("button", { type: "button", "class": "danger", "data-act": "discard", text: t("discard") }),
      ]));
    }
    return li;
  }

  async function render(known) {
    var items = known || await all();
    var mine = items.filter(function (i) { return i.user === USER; });
    var others = items.length - mine.length;
    var panel = doc.getElementById("queue");
    if (panel) {
      panel.hidden = false;
      var online = navigator.onLine;
      var refused = mine.some(function (i) { return i.status === "refused"; });
      panel.className = (online ? "online" : "offline") + (mine.length ? " pending" : "") + (refused ? " stuck" : "");
      panel.querySelector(".net").textContent = online ? t("online") : t("offline");
      panel.querySelector(".count").textContent = mine.length ? t("n_waiting", { n: mine.length }) : t("nothing_waiting");
      panel.querySelector(".count").dataset.count = String(mine.length);
      var note = doc.getElementById("queue-note");
      var message = blocked === "auth" ? t("signin") : refused ? t("refused_stop")
        : failures && mine.length && online ? t("unreachable", { time: clock(lastFailure) })
          : others ? t("other_user", { n: others }) : "";
      if (!store && mine.length) { message = t("no_storage"); }
      var info = !message && notice;
      if (info) { message = notice; }
      note.textContent = message;
      note.className = "flash" + (info ? " notice" : message ? " bad" : "");
      note.hidden = !message;
      var list = doc.getElementById("queue-list");
      var openFix = list.querySelector("li.refused input:focus");
      if (!openFix) {
        list.replaceChildren.apply(list, mine.map(function (item, n) { return queueItem(item, n === 0); }));
      }
      doc.getElementById("queue-send").hidden = !mine.length || !online;
      doc.getElementById("queue-toggle").hidden = !mine.length;
      if (!mine.length) { openList(false); }
    }
    markPage(mine);
    return items;
  }

  doc.addEventListener("click", async function (event) {
    var button = event.target.closest("#queue button, #queue-list button");
    if (!button) { return; }
    if (button.id === "queue-toggle") {
      openList(doc.getElementById("queue-list").hidden);
      return;
    }
    if (button.id === "queue-send") { failures = 0; blocked = ""; pump(); return; }
    var li = button.closest("li[data-key]");
    var item = li && (await all()).filter(function (i) { return i.key === li.dataset.key; })[0];
    if (!item) { return; }
    if (button.dataset.act === "discard") {
      if (!button.dataset.really) {  // a second tap confirms: no native dialog on a phone
        button.dataset.really = "1";
        button.textContent = t("discard_really");
        return;
      }
      await drop(item.key);
      await changed();
      pump();
    } else if (button.dataset.act === "resend") {
      var changedContent = false;
      li.querySelectorAll(".fix-fields input").forEach(function (input) {
        var holder = item.type === "photo" ? item : item.body;
        var old = holder[input.name] == null ? "" : String(holder[input.name]);
        if (old !== input.value.trim()) { holder[input.name] = input.value.trim(); changedContent = true; }
      });
      if (changedContent) {  // new content, new id: the refused one was never recorded
        if (item.type === "photo") { item.client_id = newId(); } else { item.body.client_id = newId(); }
        item.label = describe(item);
      }
      item.status = "waiting";
      delete item.error;
      await put(item);
      await changed();
      failures = 0;
      pump();
    }
  });

  // ------------------------------------------------------------ the page around the queue

  function markPage(mine) {
    var waiting = {};
    var bySample = {};
    mine.forEach(function (item) {
      if (item.type !== "photo" && item.body.kind === "container") { waiting[item.body.barcode] = item.status; }
      bySample[item.sample_no] = (bySample[item.sample_no] || 0) + 1;
    });
    doc.querySelectorAll("li[data-barcode]").forEach(function (li) {
      var status = waiting[li.dataset.barcode];
      var badge = li.querySelector(".queued");
      if (status && !badge) {
        li.appendChild(el("span", { "class": "badge wait queued", text: t("status_waiting") }));
      } else if (!status && badge) {
        badge.remove();
      }
    });
    doc.querySelectorAll("[data-progress]").forEach(function (node) {
      var done = doc.querySelectorAll("li[data-barcode].filled").length;
      var queued = doc.querySelectorAll("li[data-barcode]:not(.filled) .queued").length;
      node.textContent = t("progress", { done: done + queued, total: node.dataset.progress });
    });
    doc.querySelectorAll("form.sign").forEach(function (form) {
      var n = bySample[form.dataset.sample] || 0;
      var button = form.querySelector("button[type=submit]");
      var note = form.querySelector(".sign-wait");
      if (button) { button.disabled = n > 0; }
      if (note) { note.hidden = !n; note.textContent = t("waiting_for_sample", { n: n }); }
    });
    var thumbs = doc.querySelectorAll("ul.thumbs[data-sample]");
    thumbs.forEach(function (list) {
      list.querySelectorAll("li.waiting").forEach(function (li) { li.remove(); });
      mine.forEach(function (item) {
        if (item.type !== "photo" || item.sample_no !== list.dataset.sample || !item.blob) { return; }
        var img = el("img", { alt: item.filename || "" });
        img.src = URL.createObjectURL(item.blob);
        img.onload = function () { URL.revokeObjectURL(img.src); };
        list.appendChild(el("li", { "class": "waiting" }, [img, el("span", { text: t("status_waiting") })]));
      });
    });
  }

  // After entries reached the server, the parts of the page that show the record are re-read
  // (the forms are left alone, so nothing typed is lost).
  function refreshLive() {
    if (!doc.querySelector("[data-live]") || !navigator.onLine) { return; }
    fetch(location.pathname + location.search, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
      .then(function (r) { return r.ok && !r.redirected ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        doc.querySelectorAll("[data-live]").forEach(function (old) {
          var next = fresh.getElementById(old.id);
          if (next && !old.contains(doc.activeElement)) { old.replaceWith(doc.importNode(next, true)); }
        });
        render();
      }).catch(function () {});
  }

  function flash(form, message, good) {
    var box = form.querySelector(".flash");
    if (!box) { return; }
    box.textContent = message;
    box.className = "flash " + (good ? "good" : "bad");
  }

  function describe(item) {
    if (item.type === "photo") { return t("label_photo", { name: item.filename || "" }); }
    var b = item.body;
    if (b.kind === "container") { return t("label_container", { barcode: b.barcode }); }
    if (b.kind === "field_test") { return t("label_field_test", { parameter: b.parameter, value: b.value, unit: b.unit || "" }); }
    if (b.kind === "sampling") {
      var gps = b.gps_status === "ok" ? t("gps_ok", { acc: b.accuracy_m }) : t("gps_" + b.gps_status);
      return t("label_sampling", { time: clock(b.act_at), gps: gps });
    }
    return t("label_observation", { weather: b.weather || "" });
  }

  function entry(fields) {
    var item = { type: "entry", body: Object.assign({ client_id: newId() }, fields), sample_no: fields.sample_no };
    item.label = describe(item);
    return item;
  }

  // ------------------------------------------------------------ the forms

  var SKIP = { csrf_token: 1, next: 1, client_id: 1, sample_no: 1, photo: 1 };

  doc.addEventListener("submit", async function (event) {
    var form = event.target;
    if (form.matches("form.sign")) {
      var button = form.querySelector("button[type=submit]");
      if (button.dataset.busy) { event.preventDefault(); return; }
      button.dataset.busy = "1";
      button.setAttribute("aria-busy", "true");
      return;  // a plain form post: signing needs the network and the password
    }
    if (form.id === "scan-form") { event.preventDefault(); await scanned(form); return; }
    if (form.matches("form[data-photo]")) { event.preventDefault(); await photos(form); return; }
    var kind = form.dataset.entryKind;
    if (!kind) { return; }
    event.preventDefault();
    var data = new FormData(form);
    var fields = { kind: kind };
    data.forEach(function (value, name) {
      if (!SKIP[name] && typeof value === "string" && value.trim()) { fields[name] = value.trim(); }
    });
    if (!fields.act_at) { fields.act_at = new Date().toISOString(); }
    var samples = data.getAll("sample_no").filter(Boolean);
    if (!samples.length) { flash(form, t("choose_sample")); return; }
    for (var i = 0; i < samples.length; i++) {
      await enqueue(entry(Object.assign({}, fields, { sample_no: samples[i] })));
    }
    form.querySelectorAll("[data-clear]").forEach(function (input) { input.value = ""; });
    if (kind === "sampling") { resetFix(form); }
    flash(form, navigator.onLine ? t("saved_sending") : t("saved_offline"), true);
  });

  async function scanned(form) {
    var input = form.querySelector("input[name=barcode]");
    var code = input.value.trim().toUpperCase();
    input.value = "";
    input.focus();
    if (!code) { return; }
    var row = doc.querySelector('li[data-barcode="' + (window.CSS && CSS.escape ? CSS.escape(code) : code) + '"]');
    var mine = (await all()).filter(function (i) { return i.user === USER; });
    if (mine.some(function (i) { return i.type !== "photo" && i.body.kind === "container" && i.body.barcode === code; })) {
      flash(form, t("already_waiting", { barcode: code }), false);
      return;
    }
    if (row && row.classList.contains("filled")) {
      flash(form, t("already_filled", { barcode: code }), true);
      return;
    }
    var sample = row ? row.dataset.sample : form.dataset.defaultSample;
    await enqueue(entry({
      kind: "container", barcode: code, sample_no: sample, task_code: form.dataset.task || "",
      act_at: new Date().toISOString(), reason: (form.querySelector("input[name=reason]") || {}).value || "",
    }));
    if (row) {
      doc.querySelectorAll("li.just-scanned").forEach(function (li) { li.classList.remove("just-scanned"); });
      row.classList.add("just-scanned");
      flash(form, t("scanned", { barcode: code }), true);
    } else {
      flash(form, t("not_in_task", { barcode: code }), false);
    }
  }

  async function photos(form) {
    var input = form.querySelector("input[type=file]");
    var sample = (form.querySelector("[name=sample_no]") || {}).value;
    var max = Number(form.dataset.maxMb || 20) * 1024 * 1024;
    var problems = [];
    var files = Array.from(input.files || []);
    if (!files.length) { flash(form, t("choose_photo")); return; }
    for (var i = 0; i < files.length; i++) {
      var file = files[i];
      if (file.size > max) { problems.push(t("too_big", { name: file.name, mb: form.dataset.maxMb })); continue; }
      if (file.type && file.type.indexOf("image/") !== 0) { problems.push(t("not_image", { name: file.name })); continue; }
      var item = {
        type: "photo", blob: file, filename: file.name || "photo.jpg", client_id: newId(), sample_no: sample,
        caption: (form.querySelector("[name=caption]") || {}).value || "",
        reason: (form.querySelector("[name=reason]") || {}).value || "",
      };
      item.label = describe(item);
      await enqueue(item);
    }
    input.value = "";
    form.querySelectorAll("[data-clear]").forEach(function (field) { field.value = ""; });
    if (problems.length) { flash(form, problems.join(" "), false); } else { flash(form, t("saved_photo"), true); }
  }

  // field test: the unit of the chosen parameter
  doc.addEventListener("change", function (event) {
    var select = event.target;
    if (select.name === "parameter" && select.form && select.form.dataset.entryKind === "field_test") {
      var option = select.selectedOptions[0];
      var unit = select.form.querySelector("input[name=unit]");
      if (option && unit && option.dataset.unit !== undefined) { unit.value = option.dataset.unit; }
    }
  });

  // ------------------------------------------------------------ sampling time and position

  function haversine(lat1, lon1, lat2, lon2) {
    var r = Math.PI / 180;
    var h = Math.pow(Math.sin((lat2 - lat1) * r / 2), 2)
      + Math.cos(lat1 * r) * Math.cos(lat2 * r) * Math.pow(Math.sin((lon2 - lon1) * r / 2), 2);
    return 2 * 6371008.8 * Math.asin(Math.min(1, Math.sqrt(h)));
  }

  function resetFix(form) {
    ["act_at", "latitude", "longitude", "accuracy_m"].forEach(function (name) { form.elements[name].value = ""; });
    form.querySelector(".fix").hidden = true;
    form.querySelector("button[type=submit]").disabled = true;
    var justification = form.querySelector("textarea[name=justification]");
    justification.required = false;
    form.querySelector(".justify").hidden = true;
  }

  function showFix(form, status, coords, note) {
    var box = form.querySelector(".fix");
    var lines = [el("p", {}, [el("strong", { text: t("sampling_time") + " " }), doc.createTextNode(clock(form.elements.act_at.value))])];
    var beyond = false;
    if (status === "ok") {
      lines.push(el("p", { text: t("position") + " " + coords.latitude + ", " + coords.longitude + " (" + t("gps_ok", { acc: coords.accuracy_m }) + ")" }));
      var site = form.dataset;
      if (site.siteLat && site.siteLon) {
        var d = Math.round(haversine(Number(site.siteLat), Number(site.siteLon), Number(coords.latitude), Number(coords.longitude)));
        beyond = d > Number(site.radius || 200);
        lines.push(el("div", { "class": beyond ? "warnbox" : "okbox", "data-distance": String(d) }, [
          el("p", { text: t("distance", { d: d }) }),
          beyond ? el("p", { text: t("beyond", { r: site.radius }) }) : null,
        ]));
      }
    } else {
      lines.push(el("div", { "class": "warnbox", "data-gps": status }, [el("p", { text: note || t("gps_" + status) })]));
    }
    box.replaceChildren.apply(box, lines);
    box.hidden = false;
    form.querySelector(".justify").hidden = !beyond;
    form.querySelector("textarea[name=justification]").required = beyond;
    form.querySelector("button[type=submit]").disabled = false;
    form.querySelector("[data-locate]").disabled = false;
  }

  doc.addEventListener("click", function (event) {
    var button = event.target.closest("[data-locate]");
    if (!button) { return; }
    var form = button.form;
    form.elements.act_at.value = new Date().toISOString();  // the time of the tap, on this device, in UTC
    ["latitude", "longitude", "accuracy_m"].forEach(function (name) { form.elements[name].value = ""; });
    var status = form.elements.gps_status;
    function without(kind, note) { status.value = kind; showFix(form, kind, null, note); }
    if (!window.isSecureContext) { without("unsupported", t("gps_insecure")); return; }
    if (!navigator.geolocation) { without("unsupported"); return; }
    button.disabled = true;
    flash(form, t("locating"), true);
    navigator.geolocation.getCurrentPosition(function (position) {
      var c = position.coords;
      var coords = { latitude: c.latitude.toFixed(7), longitude: c.longitude.toFixed(7), accuracy_m: c.accuracy.toFixed(1) };
      status.value = "ok";
      Object.keys(coords).forEach(function (name) { form.elements[name].value = coords[name]; });
      flash(form, "", true);
      showFix(form, "ok", coords);
    }, function (error) {
      flash(form, "", true);
      without(error.code === 1 ? "denied" : "unavailable");
    }, { enableHighAccuracy: true, timeout: 30000, maximumAge: 0 });
  });

  // ------------------------------------------------------------ camera scanning (loaded on demand)

  var qrLoading = null;
  var reader = null;

  function loadScanner() {
    if (window.Html5Qrcode) { return Promise.resolve(); }
    if (!qrLoading) {
      qrLoading = new Promise(function (resolve, reject) {
        var script = el("script", { src: body.dataset.qrSrc });
        script.onload = resolve;
        script.onerror = function () { qrLoading = null; script.remove(); reject(new Error("load")); };
        doc.head.appendChild(script);
      });
    }
    return qrLoading;
  }

  function say(note, key) {
    note.textContent = t(key);
    note.dataset.state = key;
  }

  function stopCamera() {
    var box = doc.getElementById("qr-box");
    if (box) { box.hidden = true; }
    var r = reader;
    reader = null;
    if (!r) { return Promise.resolve(); }
    var stopping;
    try {  // html5-qrcode throws (not rejects) when it is not scanning yet
      stopping = Promise.resolve(r.getState() === 2 ? r.stop() : null);
    } catch (e) {
      stopping = Promise.resolve();
    }
    return stopping.catch(function () {}).then(function () { try { r.clear(); } catch (e) { /* gone */ } });
  }

  doc.addEventListener("click", function (event) {
    var button = event.target.closest("[data-camera]");
    if (button) {
      var target = doc.querySelector(button.dataset.camera);
      var note = doc.getElementById("qr-note");
      var box = doc.getElementById("qr-box");
      box.hidden = false;
      say(note, "camera_loading");
      stopCamera().then(loadScanner).then(function () {
        box.hidden = false;
        var mine = new window.Html5Qrcode("qr-reader");
        reader = mine;
        return mine.start({ facingMode: "environment" }, { fps: 10, qrbox: { width: 260, height: 160 } }, function (text) {
          stopCamera();
          target.value = text.trim();
          if (target.form && target.form.id === "scan-form") { target.form.requestSubmit(); } else { target.focus(); }
        }, function () {}).then(function () {
          if (reader !== mine) {  // stopped while the camera was starting
            reader = mine;
            return stopCamera();
          }
          say(note, "camera_aim");
        }, function () {
          if (reader === mine) { reader = null; }
          say(note, "camera_failed");
        });
      }).catch(function () {
        say(note, "camera_offline");
      });
      return;
    }
    if (event.target.closest("[data-camera-stop]")) { stopCamera(); }
  });

  // ------------------------------------------------------------ start

  doc.querySelectorAll("[data-js-only]").forEach(function (node) { node.hidden = false; });
  doc.querySelectorAll("[data-no-js]").forEach(function (node) { node.hidden = true; });
  doc.querySelectorAll("form[data-entry-kind=sampling]").forEach(resetFix);
  if (!store) { warnStorage(); }
  render().then(function () { pump(); });
})();
