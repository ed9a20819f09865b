// modeltool's visual report: draws the payload embedded in this page (see modeltool/report/payload.py).
// Layout by dagre (vendored above this script); drawing, collapsing, search, zoom and the side panel here.
// Groups (nested models, TF name scopes) start collapsed unless the first view stays small; a group
// with more children than CHUNK_LIMIT is split into parts in graph order, so that no expansion ever
// hands dagre thousands of nodes at once (an unrolled 200-step LSTM scope holds 2,800 ops).
(function () {
  "use strict";
  const SVGNS = "http://www.w3.org/2000/svg";
  const CHUNK_LIMIT = 300;
  const CHUNK_SIZE = 100;
  const FIRST_VIEW = 60;
  const EXPAND_ALL_LIMIT = 1500;
  const PAD = 14;
  const TITLE_H = 24;
  const SEP = "\u0001";
  const IN = "\u0002in:";
  const OUT = "\u0002out:";
  const TOP = "\u0002top";
  const BOTTOM = "\u0002bottom";
  const STATUS = {
    first: "first divergence",
    diverged: "outside tolerance",
    ok: "within tolerance",
    unmatched: "no counterpart (fused or folded)",
    added: "added in B",
    removed: "removed from A",
    changed: "changed",
  };
  const WORST = ["first", "diverged", "removed", "added", "changed", "unmatched", "ok"];
  const CATEGORIES = [
    [/input|placeholder/i, "io"],
    [/const|variable|identity/i, "const"],
    [/conv|dense|matmul|gemm|fully_connected|embedding|lstm|gru|rnn|attention/i, "layer"],
    [/norm/i, "norm"],
    [/relu|sigmoid|tanh|softmax|activation|gelu|elu|swish|hard_|logistic|prelu/i, "act"],
    [/pool/i, "pool"],
    [/reshape|transpose|concat|split|slice|squeeze|expand|flatten|gather|pad|tile|shape|pack|permute|crop|zero|repeat|cast/i, "shape"],
    [/dropout|noise/i, "drop"],
    [/add|mul|sub|div|max|min|mean|sum|pow|sqrt|exp|log|average|multiply|dot/i, "math"],
  ];

  const payload = JSON.parse(document.getElementById("payload").textContent);
  // what the browser tests read: ready/error, the first view's timing and size, the views themselves
  const state = (window.modeltoolReport = { ready: false, views: null });
  const $ = (id) => document.getElementById(id);
  const svg = $("canvas");
  const viewport = $("viewport");
  const views = (state.views = new Map());
  let view = null;

  function el(name, attrs, parent) {
    const e = document.createElementNS(SVGNS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  function html(name, text, parent, cls) {
    const e = document.createElement(name);
    if (text !== undefined && text !== null) e.textContent = text;
    if (cls) e.className = cls;
    if (parent) parent.appendChild(e);
    return e;
  }

  function category(type) {
    for (const [re, name] of CATEGORIES) if (re.test(type)) return name;
    return "other";
  }

  function number(v) {
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v)) return v.toLocaleString("en-US");
    if (v === 0 || (Math.abs(v) >= 0.001 && Math.abs(v) < 1e6)) return String(Number(v.toPrecision(6)));
    return v.toExponential(3);
  }

  function clip(text, n) {
    // names keep their end (the op, not the scope it sits in)
    return text.length <= n ? text : "\u2026" + text.slice(text.length - n + 1);
  }

  function cut(text, n) {
    return text.length <= n ? text : text.slice(0, n - 1) + "\u2026";
  }

  // ------------------------------------------------------------------ the model of one graph

  class View {
    constructor(graph) {
      this.graph = graph;
      this.nodes = new Map();
      this.kids = new Map([[null, []]]);
      this.expanded = new Set();
      this.transform = { k: 1, x: 0, y: 0 };
      this.selected = null;
      graph.nodes.forEach((n, i) => this.nodes.set(n.id, Object.assign({}, n, { order: i, kids: [] })));
      for (const n of this.nodes.values()) {
        const parent = n.parent !== null && this.nodes.has(n.parent) ? n.parent : null;
        n.parent = parent;
        (parent === null ? this.kids.get(null) : this.nodes.get(parent).kids).push(n);
      }
      this.preds = new Map();
      this.succs = new Map();
      for (const [a, b] of graph.edges) {
        if (!this.nodes.has(a) || !this.nodes.has(b)) continue;
        (this.succs.get(a) || this.succs.set(a, []).get(a)).push(b);
        (this.preds.get(b) || this.preds.set(b, []).get(b)).push(a);
      }
      this.leafCount = graph.nodes.filter((n) => !n.group).length;
      this.summarize(null);
      this.split(null);
      for (const n of [...this.nodes.values()]) if (n.group && n.kids.length) this.split(n.id);
      this.chains = new Map();
      this.cache = new Map();
    }

    children(id) {
      return id === null ? this.kids.get(null) : this.nodes.get(id).kids;
    }

    // order, leaf count and worst status of every group, bottom-up
    summarize(id) {
      const kids = this.children(id);
      let order = Infinity, leaves = 0, worst = id === null ? null : this.nodes.get(id).status;
      for (const k of kids) {
        if (k.group && k.kids.length) this.summarize(k.id);
        order = Math.min(order, k.order);
        leaves += k.group && k.kids.length ? k.leaves : 1;
        worst = worse(worst, k.worst || k.status);
      }
      kids.sort((a, b) => a.order - b.order);
      if (id !== null) {
        const n = this.nodes.get(id);
        n.order = Math.min(n.order, order);
        n.leaves = leaves;
        n.worst = worst;
      }
    }

    // a container with too many children gets parts of CHUNK_SIZE, in graph order
    split(id) {
      let kids = this.children(id);
      let level = 0;
      while (kids.length > CHUNK_LIMIT) {
        const count = Math.ceil(kids.length / CHUNK_SIZE);
        const size = Math.ceil(kids.length / count);
        const parts = [];
        for (let i = 0; i < count; i++) {
          const slice = kids.slice(i * size, (i + 1) * size);
          const part = {
            id: `${id === null ? "" : id}\u0000part${level}.${i}`, label: `part ${i + 1} of ${count}`,
            type: "part", parent: id, group: true, virtual: true, shape: "", params: null, status: null,
            metrics: {}, histogram: null, kids: slice, order: slice[0].order,
            details: { first: slice[0].label, last: slice[slice.length - 1].label },
          };
          part.leaves = slice.reduce((s, k) => s + (k.group && k.kids.length ? k.leaves : 1), 0);
          part.worst = slice.reduce((w, k) => worse(w, k.worst || k.status), null);
          part.metrics = { "nodes inside": part.leaves };
          for (const k of slice) k.parent = part.id;
          this.nodes.set(part.id, part);
          parts.push(part);
        }
        kids = parts;
        level += 1;
      }
      if (id === null) this.kids.set(null, kids);
      else this.nodes.get(id).kids = kids;
    }

    isGroup(n) {
      return n.group && n.kids.length > 0;
    }

    // ancestors of a node, outermost first
    chain(id) {
      let c = this.chains.get(id);
      if (c) return c;
      const up = [];
      for (let p = this.nodes.get(id).parent; p !== null; p = this.nodes.get(p).parent) up.push(p);
      c = up.reverse();
      this.chains.set(id, c);
      return c;
    }

    // the visible node standing for `id`: its outermost collapsed ancestor, or itself
    rep(id) {
      for (const a of this.chain(id)) if (!this.expanded.has(a)) return a;
      return id;
    }

    firstView() {
      let visible = this.kids.get(null).length;
      const queue = this.kids.get(null).filter((n) => this.isGroup(n));
      while (queue.length) {
        const g = queue.shift();
        if (visible + g.kids.length - 1 > FIRST_VIEW) continue;
        this.expanded.add(g.id);
        visible += g.kids.length - 1;
        queue.push(...g.kids.filter((n) => this.isGroup(n)));
      }
    }
  }

  function worse(a, b) {
    if (!a) return b || null;
    if (!b) return a;
    return WORST.indexOf(a) <= WORST.indexOf(b) ? a : b;
  }

  // ------------------------------------------------------------------ layout and drawing

  function nodeSize(v, n) {
    const lines = nodeLines(v, n);
    const longest = Math.max(...lines.map((l) => l.length));
    return { width: Math.max(120, Math.min(260, longest * 6.4 + 26)), height: 18 + 15 * lines.length };
  }

  function nodeLines(v, n) {
    if (v.isGroup(n)) {
      const what = n.virtual ? `${n.details.first} \u2026 ${n.details.last}` : n.type;
      const params = typeof n.params === "number" && n.params ? ` \u00b7 ${number(n.params)} params` : "";
      return [clip(n.label, 34), cut(what, 34), `${number(n.leaves)} inside${params}`];
    }
    const figures = [n.shape, typeof n.params === "number" && n.params ? number(n.params) + " params" : ""];
    return [cut(n.type, 34), clip(n.label, 34), cut(figures.filter(Boolean).join(" \u00b7 "), 38)];
  }

  function clusterTitle(n, width) {
    const room = Math.max(6, Math.floor((width - 16) / 7));
    const full = `\u2212 ${n.label}  (${n.virtual ? "part" : n.type}, ${number(n.leaves)} inside)`;
    return full.length <= room ? full : "\u2212 " + clip(n.label, room - 2);
  }

  // Each open group is laid out on its own (its children, plus ports where edges cross its frame),
  // inside out, and placed as one big box in its parent's layout: dagre never sees more than one
  // level at a time, a group's layout is reused until its contents change, and an edge that crosses
  // frames is stitched from its pieces (out of the inner layouts, across the common parent, in).
  function routesOf(v) {
    const levels = new Map();
    const level = (id) => {
      let l = levels.get(id);
      if (!l) levels.set(id, (l = { edges: new Map(), ins: new Set(), outs: new Set() }));
      return l;
    };
    const routes = [];
    const seen = new Set();
    for (const [a, b] of v.graph.edges) {
      if (!v.nodes.has(a) || !v.nodes.has(b)) continue;
      const ra = v.rep(a), rb = v.rep(b);
      if (ra === rb || v.expanded.has(ra) || v.expanded.has(rb) || seen.has(ra + SEP + rb)) continue;
      seen.add(ra + SEP + rb);
      const ca = v.chain(ra), cb = v.chain(rb);
      let i = 0;
      while (i < ca.length && i < cb.length && ca[i] === cb[i]) i++;
      const A = i < ca.length ? ca[i] : ra, B = i < cb.length ? cb[i] : rb;
      level(i ? ca[i - 1] : null).edges.set(A + SEP + B, [A, B]);
      for (let j = i; j < ca.length; j++) {
        const inner = j + 1 < ca.length ? ca[j + 1] : ra;
        level(ca[j]).outs.add(OUT + B);
        level(ca[j]).edges.set(inner + SEP + OUT + B, [inner, OUT + B]);
      }
      for (let j = i; j < cb.length; j++) {
        const inner = j + 1 < cb.length ? cb[j + 1] : rb;
        level(cb[j]).ins.add(IN + A);
        level(cb[j]).edges.set(IN + A + SEP + inner, [IN + A, inner]);
      }
      routes.push({ a: ra, b: rb, i, ca, cb, A, B });
    }
    return { levels, routes };
  }

  function layoutLevel(v, id, levels) {
    const l = levels.get(id) || { edges: new Map(), ins: new Set(), outs: new Set() };
    const boxes = [];
    const subs = new Map();
    for (const k of v.children(id)) {
      if (v.isGroup(k) && v.expanded.has(k.id)) {
        const sub = layoutLevel(v, k.id, levels);
        subs.set(k.id, sub);
        boxes.push([k.id, sub.width + 2 * PAD, sub.height + TITLE_H + PAD]);
      } else {
        const size = nodeSize(v, k);
        boxes.push([k.id, size.width, size.height]);
      }
    }
    const key = boxes.map((b) => `${b[0]}:${b[1] | 0}x${b[2] | 0}`).join(",") + "|" + [...l.edges.keys()].join(",");
    const cached = v.cache.get(id);
    if (cached && cached.key === key) return { ...cached.result, subs };
    const g = new dagre.graphlib.Graph();
    const margin = id === null ? 30 : 0;
    g.setGraph({ rankdir: "TB", nodesep: 22, ranksep: 34, edgesep: 12, marginx: margin, marginy: margin });
    g.setDefaultEdgeLabel(() => ({}));
    for (const [bid, width, height] of boxes) g.setNode(bid, { width, height });
    for (const p of [...l.ins, ...l.outs]) g.setNode(p, { width: 8, height: 2 });
    for (const [a, b] of l.edges.values()) g.setEdge(a, b);
    if (id !== null) {
      // ports sit at the top (inputs) and bottom (outputs) of their group: anchors every node hangs
      // between, pulled hard only towards the ports
      g.setNode(TOP, { width: 0, height: 0 });
      g.setNode(BOTTOM, { width: 0, height: 0 });
      for (const n of g.nodes()) {
        if (n === TOP || n === BOTTOM) continue;
        if (!g.predecessors(n).length) g.setEdge(TOP, n, { weight: l.ins.has(n) ? 10 : 0 });
        if (!g.successors(n).length) g.setEdge(n, BOTTOM, { weight: l.outs.has(n) ? 10 : 0 });
      }
    }
    dagre.layout(g);
    const nodes = new Map(), edges = new Map();
    for (const n of g.nodes()) nodes.set(n, g.node(n));
    for (const e of g.edges()) edges.set(e.v + SEP + e.w, g.edge(e).points);
    let bounds = { left: 0, top: 0, width: g.graph().width, height: g.graph().height };
    if (id !== null) { // the frame holds the nodes and ports, not the anchors' empty ranks
      let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
      for (const [n, b] of nodes) {
        if (n === TOP || n === BOTTOM) continue;
        x0 = Math.min(x0, b.x - b.width / 2);
        x1 = Math.max(x1, b.x + b.width / 2);
        y0 = Math.min(y0, b.y - b.height / 2);
        y1 = Math.max(y1, b.y + b.height / 2);
      }
      bounds = { left: x0, top: y0, width: x1 - x0, height: y1 - y0 };
    }
    const result = { ...bounds, nodes, edges };
    v.cache.set(id, { key, result });
    v.layouts += 1;
    return { ...result, subs };
  }

  // global positions: every drawn box, every open group's frame, the origin of every level
  function place(v, id, lay, ox, oy) {
    ox -= lay.left;
    oy -= lay.top;
    v.frames.set(id, { ox, oy, lay });
    for (const k of v.children(id)) {
      const n = lay.nodes.get(k.id), sub = lay.subs.get(k.id);
      const box = { x: ox + n.x, y: oy + n.y, width: n.width, height: n.height, cluster: !!sub };
      v.boxes.set(k.id, box);
      if (sub) place(v, k.id, sub, box.x - box.width / 2 + PAD, box.y - box.height / 2 + TITLE_H);
    }
  }

  function stitch(v, r) {
    const pts = [];
    const piece = (frame, a, b) => {
      const f = v.frames.get(frame), p = f && f.lay.edges.get(a + SEP + b);
      if (p) for (const q of p) pts.push({ x: q.x + f.ox, y: q.y + f.oy });
    };
    for (let j = r.ca.length - 1; j >= r.i; j--) piece(r.ca[j], j + 1 < r.ca.length ? r.ca[j + 1] : r.a, OUT + r.B);
    piece(r.i ? r.ca[r.i - 1] : null, r.A, r.B);
    for (let j = r.i; j < r.cb.length; j++) piece(r.cb[j], IN + r.A, j + 1 < r.cb.length ? r.cb[j + 1] : r.b);
    return pts;
  }

  function layout(v) {
    const t0 = performance.now();
    const { levels, routes } = routesOf(v);
    v.layouts = 0;
    const root = layoutLevel(v, null, levels);
    v.boxes = new Map();
    v.frames = new Map();
    place(v, null, root, 0, 0);
    v.size = { width: root.width, height: root.height };
    v.routes = routes;
    v.layoutMs = performance.now() - t0;
  }

  function draw(v) {
    viewport.textContent = "";
    const clusters = el("g", { class: "clusters" }, viewport);
    const edges = el("g", { class: "edges" }, viewport);
    const nodes = el("g", { class: "nodes" }, viewport);
    for (const [id, box] of v.boxes) {
      if (!box.cluster) continue;
      const n = v.nodes.get(id);
      const frame = el("g", { class: "cluster" + (n.worst ? " s-" + n.worst : ""), "data-id": id }, clusters);
      el("rect", { x: box.x - box.width / 2, y: box.y - box.height / 2, width: box.width, height: box.height, rx: 6 }, frame);
      const title = el("text", { class: "cluster-title", x: box.x - box.width / 2 + 8, y: box.y - box.height / 2 + 15 }, frame);
      title.textContent = clusterTitle(n, box.width);
      el("title", {}, title).textContent = `${n.virtual ? n.label : n.id}: click to close`;
    }
    for (const r of v.routes) {
      const pts = stitch(v, r);
      if (pts.length < 2) continue;
      let d = `M${pts[0].x},${pts[0].y}`;
      for (let i = 1; i < pts.length - 1; i++) {
        const mx = (pts[i].x + pts[i + 1].x) / 2, my = (pts[i].y + pts[i + 1].y) / 2;
        d += ` Q${pts[i].x},${pts[i].y} ${mx},${my}`;
      }
      d += ` L${pts[pts.length - 1].x},${pts[pts.length - 1].y}`;
      el("path", { d, class: "edge", "data-a": r.a, "data-b": r.b, "marker-end": "url(#arrow)" }, edges);
    }
    for (const [id, box] of v.boxes) {
      if (box.cluster) continue;
      const n = v.nodes.get(id);
      const group = v.isGroup(n);
      const status = group ? n.worst : n.status;
      const cls = ["node", "c-" + category(n.type), group ? "group" : "", status ? "s-" + status : ""];
      const x = box.x - box.width / 2, y = box.y - box.height / 2;
      const node = el("g", { class: cls.join(" "), "data-id": id, transform: `translate(${x},${y})` }, nodes);
      el("title", {}, node).textContent = (n.virtual ? n.label : id) + (status ? ` [${STATUS[status]}]` : "");
      if (group) el("rect", { class: "stack", x: 4, y: 4, width: box.width, height: box.height, rx: 5 }, node);
      el("rect", { class: "body", width: box.width, height: box.height, rx: 5 }, node);
      el("rect", { class: "band", width: 6, height: box.height, rx: 2 }, node);
      nodeLines(v, n).forEach((line, i) => {
        const t = el("text", { x: 14, y: 19 + 15 * i, class: i === 0 ? "l-head" : i === 1 ? "l-name" : "l-fig" }, node);
        t.textContent = line;
      });
      if (group) {
        const toggle = el("g", { class: "toggle", transform: `translate(${box.width - 22},4)` }, node);
        el("rect", { width: 18, height: 18, rx: 3 }, toggle);
        el("text", { x: 9, y: 14 }, toggle).textContent = "+";
      }
    }
    if (v.selected && v.boxes.has(v.rep(v.selected))) mark(v, v.rep(v.selected));
  }

  function render(v, keep) {
    // keep: a node id whose place on the screen stays put across the new layout
    const before = keep && v.boxes && v.boxes.has(keep) ? screenOf(v, v.boxes.get(keep)) : null;
    layout(v);
    draw(v);
    if (before && v.boxes.has(keep)) {
      const now = v.boxes.get(keep), t = v.transform;
      t.x = before.x - now.x * t.k;
      t.y = before.y - (now.y - now.height / 2) * t.k;
      apply(v);
    }
    v.shown = [...v.boxes.values()].filter((b) => !b.cluster).length;
    $("counts").textContent = `${number(v.shown)} boxes drawn; ${number(v.leafCount)} ${v.leafCount === 1 ? "node" : "nodes"} in all`;
  }

  function screenOf(v, box) {
    const t = v.transform;
    return { x: box.x * t.k + t.x, y: (box.y - box.height / 2) * t.k + t.y };
  }

  // ------------------------------------------------------------------ zoom, pan, fit

  function apply(v) {
    const t = v.transform;
    viewport.setAttribute("transform", `translate(${t.x},${t.y}) scale(${t.k})`);
    $("zoom").textContent = Math.round(t.k * 100) + "%";
  }

  function fit(v) {
    const g = v.size, r = svg.getBoundingClientRect();
    const k = Math.min(r.width / g.width, r.height / g.height, 1.25);
    const t = v.transform;
    if (k >= 0.45) {
      t.k = k;
      t.x = (r.width - g.width * k) / 2;
      t.y = (r.height - g.height * k) / 2;
    } else {
      t.k = 0.9; // a tall model: readable at the top, as Netron opens it
      t.x = r.width / 2 - (g.width / 2) * t.k;
      t.y = 10;
      const first = [...v.boxes.values()].filter((b) => !b.cluster).sort((a, b) => a.y - b.y)[0];
      if (first) t.x = r.width / 2 - first.x * t.k;
    }
    apply(v);
  }

  function zoomAt(v, factor, cx, cy) {
    const t = v.transform;
    const k = Math.max(0.02, Math.min(4, t.k * factor));
    t.x = cx - ((cx - t.x) * k) / t.k;
    t.y = cy - ((cy - t.y) * k) / t.k;
    t.k = k;
    apply(v);
  }

  function centre(v, id) {
    const box = v.boxes.get(v.rep(id)), r = svg.getBoundingClientRect(), t = v.transform;
    if (t.k < 0.6) t.k = 1;
    t.x = r.width / 2 - box.x * t.k;
    t.y = r.height / 2 - box.y * t.k;
    apply(v);
  }

  svg.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = svg.getBoundingClientRect();
    zoomAt(view, Math.exp(-ev.deltaY * (ev.ctrlKey ? 0.01 : 0.0015)), ev.clientX - r.left, ev.clientY - r.top);
  }, { passive: false });

  let drag = null;
  svg.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0 || ev.target.closest(".node, .toggle, .cluster-title")) return;
    drag = { x: ev.clientX, y: ev.clientY, tx: view.transform.x, ty: view.transform.y };
    svg.setPointerCapture(ev.pointerId);
  });
  svg.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    view.transform.x = drag.tx + ev.clientX - drag.x;
    view.transform.y = drag.ty + ev.clientY - drag.y;
    apply(view);
  });
  svg.addEventListener("pointerup", () => { drag = null; });

  // ------------------------------------------------------------------ clicks, expansion, selection

  svg.addEventListener("click", (ev) => {
    const toggle = ev.target.closest(".toggle");
    const title = ev.target.closest(".cluster-title");
    const node = ev.target.closest(".node");
    if (toggle && node) return setExpanded(view, node.dataset.id, true);
    if (title) return setExpanded(view, title.parentNode.dataset.id, false);
    if (node) return select(view, node.dataset.id);
    const cluster = ev.target.closest(".cluster");
    if (cluster) return select(view, cluster.dataset.id);
  });
  svg.addEventListener("dblclick", (ev) => {
    const node = ev.target.closest(".node");
    if (node && view.isGroup(view.nodes.get(node.dataset.id))) setExpanded(view, node.dataset.id, true);
  });

  function setExpanded(v, id, open) {
    if (open) v.expanded.add(id);
    else {
      v.expanded.delete(id);
      for (const other of [...v.expanded]) if (v.chain(other).includes(id)) v.expanded.delete(other);
    }
    render(v, id);
    select(v, id);
  }

  function mark(v, id) {
    for (const e of viewport.querySelectorAll(".selected, .linked")) e.classList.remove("selected", "linked");
    const node = viewport.querySelector(`[data-id="${CSS.escape(id)}"]`);
    if (node) node.classList.add("selected");
    for (const e of viewport.querySelectorAll(".edge")) {
      if (e.dataset.a === id || e.dataset.b === id) e.classList.add("linked");
    }
  }

  function select(v, id) {
    v.selected = id;
    const shown = v.rep(id);
    if (v.boxes.has(shown)) mark(v, shown);
    panel(v, v.nodes.get(id));
  }

  function reveal(v, id) {
    let changed = false;
    for (const a of v.chain(id)) if (!v.expanded.has(a)) { v.expanded.add(a); changed = true; }
    if (changed) render(v);
    select(v, id);
    centre(v, id);
    const node = viewport.querySelector(`[data-id="${CSS.escape(id)}"]`);
    if (node) {
      node.classList.remove("found");
      void node.getBBox();
      node.classList.add("found");
    }
  }

  // ------------------------------------------------------------------ side panel

  function table(parent, rows) {
    const t = html("table", null, parent);
    for (const [k, val] of rows) {
      const tr = html("tr", null, t);
      html("th", k, tr);
      html("td", number(val), tr);
    }
    return t;
  }

  function panel(v, n) {
    const p = $("panel");
    p.textContent = "";
    const status = v.isGroup(n) ? n.worst : n.status;
    html("h2", n.label, p);
    if (!n.virtual) html("div", n.id, p, "full-id");
    if (status) html("div", STATUS[status], p, "badge s-" + status);
    const rows = [["type", n.type]];
    if (n.shape) rows.push(["shape", n.shape]);
    if (typeof n.params === "number") rows.push(["params", n.params]);
    table(p, rows);
    if (v.isGroup(n)) {
      const b = html("button", v.expanded.has(n.id) ? "Collapse" : "Expand", p, "wide");
      b.onclick = () => setExpanded(v, n.id, !v.expanded.has(n.id));
    }
    const metrics = Object.entries(n.metrics || {});
    if (metrics.length) {
      html("h3", "Metrics", p);
      table(p, metrics).className = "metrics";
    }
    if (n.histogram) {
      html("h3", "Differences (histogram)", p);
      histogram(p, n.histogram);
    }
    const details = Object.entries(n.details || {});
    if (details.length) {
      html("h3", "Details", p);
      table(p, details);
    }
    for (const [label, map] of [["Inputs", v.preds], ["Outputs", v.succs]]) {
      const ids = map.get(n.id) || [];
      if (!ids.length) continue;
      html("h3", `${label} (${ids.length})`, p);
      const ul = html("ul", null, p, "links");
      for (const other of ids.slice(0, 40)) {
        const a = html("a", v.nodes.get(other).label, html("li", null, ul));
        a.title = other;
        a.onclick = () => reveal(v, other);
      }
      if (ids.length > 40) html("li", `\u2026 ${ids.length - 40} more`, ul);
    }
  }

  function histogram(parent, h) {
    const W = 280, H = 110, pad = 22, top = 18;
    const s = el("svg", { width: W, height: H + top + 26, class: "hist" }, parent);
    const most = Math.max(1, ...h.counts);
    const lo = h.edges[0], hi = h.edges[h.edges.length - 1], span = hi - lo || 1;
    h.counts.forEach((c, i) => {
      const x0 = pad + ((h.edges[i] - lo) / span) * (W - 2 * pad);
      const x1 = pad + ((h.edges[i + 1] - lo) / span) * (W - 2 * pad);
      const bh = (c / most) * H;
      const bar = el("rect", { x: x0, y: top + H - bh, width: Math.max(1, x1 - x0 - 1), height: bh }, s);
      el("title", {}, bar).textContent = `${number(h.edges[i])} .. ${number(h.edges[i + 1])}: ${c}`;
    });
    el("line", { x1: pad, x2: W - pad, y1: top + H, y2: top + H, class: "axis" }, s);
    el("text", { x: pad, y: top + H + 16, class: "tick" }, s).textContent = number(lo);
    el("text", { x: W - pad, y: top + H + 16, class: "tick end" }, s).textContent = number(hi);
    if (lo < 0 && hi > 0) {
      const x = pad + ((0 - lo) / span) * (W - 2 * pad);
      el("line", { x1: x, x2: x, y1: top, y2: top + H + 4, class: "zero" }, s);
      el("text", { x, y: top + H + 16, class: "tick mid" }, s).textContent = "0";
    }
    el("text", { x: pad, y: 12, class: "tick" }, s).textContent = `tallest bar: ${number(most)} values`;
  }

  // ------------------------------------------------------------------ search

  const search = $("search"), results = $("results");
  let timer = 0;
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(find, 120); });
  search.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      const first = results.querySelector("li");
      if (first) first.click();
    } else if (ev.key === "Escape") {
      search.value = "";
      find();
    }
  });

  function find() {
    const q = search.value.trim().toLowerCase();
    results.textContent = "";
    for (const e of viewport.querySelectorAll(".match")) e.classList.remove("match");
    if (!q) return;
    const hits = [];
    const shown = new Set();
    for (const n of view.nodes.values()) {
      if (n.virtual || !(n.id.toLowerCase().includes(q) || n.type.toLowerCase() === q)) continue;
      hits.push(n);
      shown.add(view.rep(n.id));
    }
    for (const id of shown) {
      const e = viewport.querySelector(`[data-id="${CSS.escape(id)}"]`);
      if (e) e.classList.add("match");
    }
    hits.sort((a, b) => (a.label.toLowerCase() === q ? -1 : 0) - (b.label.toLowerCase() === q ? -1 : 0) || a.order - b.order);
    for (const n of hits.slice(0, 50)) {
      const li = html("li", null, results);
      html("b", n.label, li);
      html("span", " " + n.type, li);
      li.title = n.id;
      li.onclick = () => { results.textContent = ""; reveal(view, n.id); };
    }
    if (hits.length > 50) html("li", `\u2026 ${hits.length - 50} more`, results, "more");
    if (!hits.length) html("li", "no node matches", results, "more");
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.target === search) return;
    if (ev.key === "/") { ev.preventDefault(); search.focus(); }
    if (ev.key === "f") fit(view);
  });

  // ------------------------------------------------------------------ page

  function show(index) {
    const graph = payload.graphs[index];
    if (!views.has(index)) {
      const v = new View(graph);
      v.firstView();
      views.set(index, v);
      view = v;
      render(v);
      fit(v);
    } else {
      view = views.get(index);
      render(view);
      apply(view);
    }
    for (const [i, tab] of document.querySelectorAll("#tabs button").entries()) tab.classList.toggle("on", i === index);
    $("expand-all").disabled = view.graph.nodes.length > EXPAND_ALL_LIMIT;
    $("panel").textContent = "";
    html("p", "Click a node for its figures; + or a double click opens a group; a group's title closes it.", $("panel"), "hint");
  }

  function header() {
    document.title = payload.title;
    $("title").textContent = payload.title;
    const summary = $("summary");
    for (const line of payload.summary) html("li", line, summary);
    const tabs = $("tabs");
    payload.graphs.forEach((g, i) => {
      const b = html("button", g.title, tabs);
      b.onclick = () => show(i);
    });
    const present = new Set();
    for (const g of payload.graphs) for (const n of g.nodes) if (n.status) present.add(n.status);
    const legend = $("legend");
    for (const s of WORST) {
      if (!present.has(s)) continue;
      const item = html("span", null, legend, "item");
      html("i", null, item, "chip s-" + s);
      item.appendChild(document.createTextNode(STATUS[s]));
    }
    if (payload.graphs.some((g) => g.nodes.some((n) => n.group))) {
      const item = html("span", null, legend, "item");
      html("i", null, item, "chip group-chip");
      item.appendChild(document.createTextNode("group (+ to open)"));
    }
    legend.hidden = !legend.childNodes.length;
    $("zoom-in").onclick = () => { const r = svg.getBoundingClientRect(); zoomAt(view, 1.25, r.width / 2, r.height / 2); };
    $("zoom-out").onclick = () => { const r = svg.getBoundingClientRect(); zoomAt(view, 0.8, r.width / 2, r.height / 2); };
    $("fit").onclick = () => fit(view);
    $("collapse-all").onclick = () => { view.expanded.clear(); render(view); fit(view); };
    $("expand-all").onclick = () => {
      for (const n of view.nodes.values()) if (view.isGroup(n)) view.expanded.add(n.id);
      render(view);
      fit(view);
    };
  }

  try {
    header();
    if (payload.graphs.length) show(0);
    else html("p", "This report has no graph to draw (the file holds no architecture).", $("panel"), "hint");
    state.firstViewMs = performance.now();
    state.layoutMs = view ? view.layoutMs : 0;
    state.shown = view ? view.shown : 0;
    state.total = view ? view.graph.nodes.length : 0;
    state.render = (v) => { render(v); fit(v); };
    state.ready = true;
  } catch (err) {
    state.error = String(err && err.stack || err);
    html("pre", state.error, $("panel"), "error");
    throw err;
  }
})();
