// rbcflow review: the acquisition page. Plain JavaScript, nothing from the network.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("data").textContent);
  const token = JSON.parse(document.getElementById("tok").textContent);
  const base = "/a/" + encodeURIComponent(data.name);
  const CROP = 31, ZOOM = 6;
  const KEYS = { t: "tank-treading", f: "flipping", u: "unreliable" };
  let review = data.review;          // track id -> reviewed label (the server's copy)
  let pos = 0;                        // index of the current track in data.tracks
  const byId = new Map(data.tracks.map((t) => [t.id, t]));
  let seq = 0;                        // counts the technician's actions (decide, undo, move)
  // the server's new best track replaces the one shown after a decision only this soon after it
  // (ms): later, the technician may already be judging the shown track, and a key meant for it
  // must not land on another
  const JUMP_MS = 250;
  let advancedAt = 0;
  const history = [];                 // undo stack: {id, prev}
  let loopTimer = null;
  const $ = (id) => document.getElementById(id);

  function pct(x) { return x === null || x === undefined ? "-" : (100 * x).toFixed(1) + "%"; }
  function num(x, d) { return x === null || x === undefined ? "-" : Number(x).toFixed(d); }

  function showFigures(f) {
    $("frac").textContent = pct(f.running_fraction);
    $("ci").textContent = "(95% " + pct(f.running_ci_low) + " \u2013 " + pct(f.running_ci_high) + ")";
    $("progress").textContent = f.reviewed_tracks + " / " + data.tracks.length;
  }

  function labelOf(t) { return review[String(t.id)] || null; }

  function renderList() {
    const ol = $("tracklist");
    const frag = document.createDocumentFragment();
    data.tracks.forEach((t, i) => {
      const li = document.createElement("li");
      li.dataset.index = String(i);
      li.id = "li-" + t.id;
      frag.appendChild(li);
    });
    ol.replaceChildren(frag);
    data.tracks.forEach((t, i) => updateItem(i));
    ol.addEventListener("click", (e) => {
      const li = e.target.closest("li");
      if (li) { seq += 1; go(Number(li.dataset.index)); }
    });
  }

  // the server's new review order (after every decision): the list follows it, the current
  // track stays the current one
  function applyOrder(order) {
    if (!order || order.length !== data.tracks.length) { return; }
    const cur = data.tracks[pos];
    data.tracks = order.map((id) => byId.get(id));
    const ol = $("tracklist");
    const frag = document.createDocumentFragment();
    data.tracks.forEach((t, i) => {
      const li = $("li-" + t.id);
      li.dataset.index = String(i);
      frag.appendChild(li);
      if (t === cur) { pos = i; }
    });
    ol.appendChild(frag);
    document.body.dataset.best = String(data.tracks[0].id);
    document.body.dataset.reranked = String(Number(document.body.dataset.reranked || 0) + 1);
  }

  function showTitle() {
    const t = data.tracks[pos];
    $("tracktitle").textContent = "track " + t.id + "  (" + (pos + 1) + " of " + data.tracks.length + ")";
  }

  function firstOpen() {
    const i = data.tracks.findIndex((t) => !labelOf(t));
    return i < 0 ? 0 : i;
  }

  function updateItem(i) {
    const t = data.tracks[i];
    const li = $("li-" + t.id);
    const r = labelOf(t);
    li.className = (i === pos ? "cur " : "") + (r ? "done" : "");
    li.textContent = "track " + t.id + ": " + t.called + (r ? " \u2192 " + r : "");
  }

  function stopLoop() { if (loopTimer) { clearInterval(loopTimer); loopTimer = null; } }

  function playLoop(img, t) {
    stopLoop();
    const canvas = $("loop"), ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    const n = Math.max(1, Math.floor(img.naturalWidth / CROP));
    // a strip of a long track keeps evenly spaced frames: play them at the recording's pace
    const step = n > 1 ? Math.max(1, (t.crop_frames - 1) / (n - 1)) : 1;
    const interval = Math.max(10, 1000 * step / data.fps);
    let k = 0;
    const draw = () => {
      ctx.drawImage(img, k * CROP, 0, CROP, CROP, 0, 0, CROP * ZOOM, CROP * ZOOM);
      k = (k + 1) % n;
    };
    draw();
    loopTimer = setInterval(draw, interval);
    $("loopcap").textContent = n + " frames at " + num(data.fps / step, 1) + " frames/s (the recording's pace)";
  }

  function showPath(t) {
    const svg = $("trackpath");
    svg.replaceChildren();
    if (!data.has_thumbnail || !data.frame_shape) { return; }
    const [rows, cols] = data.frame_shape;
    svg.setAttribute("viewBox", "0 0 " + cols + " " + rows);
    svg.setAttribute("preserveAspectRatio", "none");
    fetch(base + "/path/" + t.id, { credentials: "same-origin" })
      .then((r) => r.json()).then((pts) => {
        if (data.tracks[pos] !== t || !pts.length) { return; }
        const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
        line.setAttribute("points", pts.map((p) => p[0] + "," + p[1]).join(" "));
        line.setAttribute("class", "path");
        const dot = document.createElementNS("http://www.w3.org/2000/svg", "circle");
        dot.setAttribute("cx", pts[0][0]); dot.setAttribute("cy", pts[0][1]);
        dot.setAttribute("r", String(Math.max(cols, rows) / 80));
        dot.setAttribute("class", "start");
        svg.append(line, dot);
      }).catch(() => {});
  }

  function prefetch(i) {
    const t = data.tracks[i];
    if (t && t.has_strip) { new Image().src = base + "/strip/" + t.id + ".png"; }
  }

  function show() {
    const t = data.tracks[pos];
    if (!t) { return; }
    showTitle();
    const r = labelOf(t);
    $("callline").textContent = "call: " + t.called + (t.rule ? " (" + t.rule + ")" : "") +
      (r ? "   \u2014 reviewed: " + r : "   \u2014 not reviewed");
    $("callline").className = r ? "reviewed" : "";
    const rows = [["p_reliable", num(t.p_reliable, 3)], ["p_tank_treading", num(t.p_tank_treading, 3)],
      ["frames", String(t.n_frames)]];
    for (const [k, v] of Object.entries(t.features)) { rows.push([k, num(v, 3)]); }
    const table = $("facts");
    table.replaceChildren(...rows.map(([k, v]) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th"); th.textContent = k;
      const td = document.createElement("td"); td.textContent = v;
      tr.append(th, td); return tr;
    }));
    stopLoop();
    const strip = $("strip");
    if (t.has_strip) {
      strip.onload = () => { if (data.tracks[pos] === t) { playLoop(strip, t); } };
      strip.src = base + "/strip/" + t.id + ".png";
      strip.alt = "strip of track " + t.id;
    } else {
      strip.removeAttribute("src"); strip.alt = "no strip kept for this track";
      $("loopcap").textContent = "no crops kept for this track";
      const ctx = $("loop").getContext("2d"); ctx.clearRect(0, 0, 186, 186);
    }
    if (data.has_thumbnail) { $("thumb").src = base + "/thumbnail.png"; }
    showPath(t);
    prefetch(pos + 1); prefetch(pos + 2);
    markCurrent();
  }

  function markCurrent() {
    const t = data.tracks[pos];
    document.querySelectorAll("#tracklist li.cur").forEach((li) => li.classList.remove("cur"));
    const li = $("li-" + t.id);
    if (li) { li.classList.add("cur"); li.scrollIntoView({ block: "nearest" }); }
    document.body.dataset.current = String(t.id);
  }

  function go(i) { pos = Math.max(0, Math.min(data.tracks.length - 1, i)); show(); }

  let queue = Promise.resolve();
  function post(id, label, jump) {
    // decisions go to the server one after another, in the order they were made
    queue = queue.then(() => fetch(base + "/decide", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Rbcflow-Token": token },
      body: JSON.stringify({ track_id: id, reviewed: label }),
    }).then((r) => {
      if (!r.ok) { return r.text().then((m) => { throw new Error(m); }); }
      return r.json();
    }).then((res) => {
      applyOrder(res.order);
      // nothing done since this decision, and soon after it: go on with the server's new best
      // track
      const fresh = performance.now() - advancedAt < JUMP_MS;
      if (jump === seq && fresh && firstOpen() !== pos) { go(firstOpen()); } else { showTitle(); markCurrent(); }
      showFigures(res.figures);
      $("saved").textContent = "saved"; $("saved").className = "saved ok";
      document.body.dataset.saved = String(Number(document.body.dataset.saved || 0) + 1);
    }).catch((e) => {
      $("saved").textContent = "NOT saved: " + e.message; $("saved").className = "saved bad";
    }));
    return queue;
  }

  function decide(label) {
    const t = data.tracks[pos];
    const prev = labelOf(t);
    history.push({ id: t.id, prev: prev, index: pos });
    review[String(t.id)] = label;
    updateItem(pos);
    // at once: the next open track of the current order, until the server's new order comes
    let next = data.tracks.findIndex((u, i) => i > pos && !labelOf(u));
    go(next < 0 ? pos + 1 : next);
    advancedAt = performance.now();
    seq += 1;
    post(t.id, label, seq);
  }

  function undo() {
    const h = history.pop();
    if (!h) { return; }
    if (h.prev) { review[String(h.id)] = h.prev; } else { delete review[String(h.id)]; }
    seq += 1;
    const i = data.tracks.findIndex((t) => t.id === h.id);
    updateItem(i);
    go(i);
    post(h.id, h.prev, -1);
  }

  function onKey(key) {
    if (KEYS[key]) { decide(KEYS[key]); }
    else if (key === " ") { decide(data.tracks[pos].called); }
    else if (key === "Backspace") { undo(); }
    else if (key === "ArrowRight" || key === "ArrowDown") { seq += 1; go(pos + 1); }
    else if (key === "ArrowLeft" || key === "ArrowUp") { seq += 1; go(pos - 1); }
    else { return false; }
    return true;
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    if (onKey(e.key)) { e.preventDefault(); }
  });
  document.querySelectorAll("#keys button").forEach((b) => {
    b.addEventListener("click", (e) => { e.preventDefault(); b.blur(); onKey(b.dataset.key); });
  });
  // another tab may have decided meanwhile: take the server's copy when this one comes back
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible") { return; }
    fetch(base + "/state", { credentials: "same-origin" }).then((r) => r.json()).then((s) => {
      review = s.review; applyOrder(s.order);
      data.tracks.forEach((t, i) => updateItem(i)); showFigures(s.figures); show();
    }).catch(() => {});
  });

  renderList();
  showFigures(data.figures);
  // resume: the first track not reviewed yet (review order puts them first)
  document.body.dataset.best = String(data.tracks[0].id);
  go(firstOpen());
  document.body.dataset.ready = "1";
})();
