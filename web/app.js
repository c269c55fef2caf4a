// The estate page: reads the server's estate API and drives the inheritance flow and the try-it box.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { people: [], adapters: [], report: null };

// The write token: from the address (#token=...), remembered in this browser.
const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) localStorage.setItem("heirloom-token", fromHash);
$("token").value = localStorage.getItem("heirloom-token") || "";
$("token").addEventListener("change", () => localStorage.setItem("heirloom-token", $("token").value));

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  const t = $("token").value.trim();
  if (t) h["Authorization"] = "Bearer " + t;
  return h;
}

async function api(path, body) {
  const res = await fetch(path, body === undefined ? { headers: headers(false) }
                                                   : { method: "POST", headers: headers(true), body: JSON.stringify(body) });
  const data = await res.json().catch(() => ({ error: { message: res.statusText } }));
  if (!res.ok) throw new Error((data.error && data.error.message) || res.statusText);
  return data;
}

const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) k === "class" ? (e.className = v) : e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
};
const short = (id) => id.slice(0, 10);
const label = (a) => `${a.owner} · ${a.kind} · gen ${a.generation} · ${short(a.id)}${a.label ? " · " + a.label : ""}`;
const pct = (x) => Math.round(100 * x) + "%";

function fillSelect(sel, items, text, value, keep) {
  const old = sel.value;
  sel.replaceChildren(...items.map((it) => el("option", { value: value(it) }, text(it))));
  if (keep && items.some((it) => value(it) === old)) sel.value = old;
}

async function loadPeople() {
  state.people = await api("/estate/people");
  state.adapters = state.people.flatMap((p) => p.adapters);
  $("people").replaceChildren(...state.people.map((p) => el("div", { class: "card" },
    el("h3", {}, p.name + (p.private ? " (private)" : "")),
    p.adapters.length ? el("ul", {}, ...p.adapters.map((a) => el("li", {},
      `${a.kind}, generation ${a.generation}, ${a.bytes} bytes `, el("span", { class: "mono" }, short(a.id)),
      a.label ? ` — ${a.label}` : "")))
      : el("p", { class: "hint" }, p.readable ? "no adapter yet" : "private"))));
  fillSelect($("parent"), state.adapters, label, (a) => a.id, true);
  fillSelect($("successor"), state.people, (p) => p.name, (p) => p.name, true);
  fillChild();
  fillSelect($("try-model"), [{ name: "base" }, ...state.people.filter((p) => p.adapters.length), ...state.adapters],
    (x) => x.id ? "adapter " + label(x) : x.name === "base" ? "the base alone" : x.name + " (newest adapter)",
    (x) => x.id || x.name, true);
}

function fillChild() {
  const mine = state.adapters.filter((a) => a.owner === $("successor").value);
  fillSelect($("child"), mine, label, (a) => a.id, true);
  $("show-overlap").disabled = !mine.length || !$("parent").value;
}

async function loadLineage() {
  const { nodes, edges } = await api("/estate/lineage");
  const byGen = new Map();
  for (const n of nodes) (byGen.get(n.generation) || byGen.set(n.generation, []).get(n.generation)).push(n);
  const gens = [...byGen.keys()].sort((a, b) => a - b);
  const W = 220, H = 54, pad = 14, pos = new Map();
  gens.forEach((g, gi) => byGen.get(g).forEach((n, i) => pos.set(n.id, { x: pad + gi * (W + 60), y: pad + i * (H + 16), n })));
  const rows = Math.max(1, ...gens.map((g) => byGen.get(g).length));
  const width = pad * 2 + gens.length * (W + 60), height = pad * 2 + rows * (H + 16);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${Math.max(width, 300)} ${height}`);
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  for (const e of edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    add("path", { d: `M${a.x + W},${a.y + H / 2} C${a.x + W + 40},${a.y + H / 2} ${b.x - 40},${b.y + H / 2} ${b.x},${b.y + H / 2}`,
                  fill: "none", stroke: e.role === "parent" ? "#2d6a4f" : "#6c8ebf", "stroke-width": 2,
                  "stroke-dasharray": e.role === "parent" ? "" : "5 4" });
  }
  for (const { x, y, n } of pos.values()) {
    add("rect", { x, y, width: W, height: H, rx: 6, fill: n.scheme ? "#f3f8f5" : "#fff", stroke: "#9aa5b5" });
    add("text", { x: x + 8, y: y + 20, "font-weight": 600 }, `${n.owner} — generation ${n.generation}`);
    add("text", { x: x + 8, y: y + 40 }, n.scheme ? `${n.scheme} · ${n.regime} · ${short(n.id)}` : `${n.kind} · ${short(n.id)}`);
  }
  $("lineage").replaceChildren(nodes.length ? svg : el("p", { class: "hint" }, "no adapters yet"));
}

function showReport(r) {
  const p = r.parent.owner, c = r.child.owner;
  const rows = Object.entries(r.predicted_retention).map(([scheme, v]) => el("tr", {},
    el("td", { class: "mono" }, scheme + (scheme === r.recommended.scheme ? " ★" : "")),
    el("td", {}, el("span", { class: "bar", style: `width:${Math.max(0, 80 * v.parent_ratio)}px` }), " ", pct(v.parent_ratio)),
    el("td", {}, el("span", { class: "bar child", style: `width:${Math.max(0, 80 * v.child_ratio)}px` }), " ", pct(v.child_ratio))));
  const box = $("report");
  box.className = "report " + r.regime;
  box.replaceChildren(
    el("p", {}, "regime ", el("span", { class: "regime", id: "regime" }, r.regime), ` — cosine ${r.cosine.toFixed(2)}`),
    ...r.summary.slice(0, 2).map((s) => el("p", {}, s)),
    el("table", { class: "keep" }, el("tr", {}, el("th", {}, "scheme"), el("th", {}, `keeps of ${p}'s skill`), el("th", {}, `keeps of ${c}'s`)), ...rows),
    el("p", {}, r.summary[r.summary.length - 2]),
    el("p", { class: "hint" }, r.summary[r.summary.length - 1]));
  box.hidden = false;
  $("decision").hidden = false;
}

$("successor").addEventListener("change", fillChild);
$("parent").addEventListener("change", fillChild);
$("show-overlap").addEventListener("click", async () => {
  $("inherit-result").textContent = "";
  $("inherit-result").className = "result";
  try {
    state.report = await api("/estate/overlap", { parent: $("parent").value, child: $("child").value, keep_both: $("keep-both").checked });
    showReport(state.report);
  } catch (e) {
    $("inherit-result").textContent = e.message;
    $("inherit-result").className = "result error";
  }
});
$("decline").addEventListener("click", () => {
  $("report").hidden = true;
  $("decision").hidden = true;
  $("inherit-result").className = "result";
  $("inherit-result").textContent = "Declined: nothing was written.";
});
$("accept").addEventListener("click", async () => {
  $("accept").disabled = true;
  try {
    const r = await api("/estate/inherit", { parent: $("parent").value, successor: $("successor").value, child: $("child").value,
                                              keep_both: $("keep-both").checked });
    $("inherit-result").className = "result";
    $("inherit-result").textContent = `Accepted: ${r.heir.owner} now holds heir ${short(r.heir.id)} (generation ${r.heir.generation}, ${r.scheme}, ${r.heir.bytes} bytes), signed and recorded.`;
    $("decision").hidden = true;
    await Promise.all([loadPeople(), loadLineage()]);
  } catch (e) {
    $("inherit-result").className = "result error";
    $("inherit-result").textContent = "Not inherited: " + e.message;
  } finally {
    $("accept").disabled = false;
  }
});

$("try-go").addEventListener("click", async () => {
  const out = $("try-out");
  out.textContent = $("try-prompt").value;
  $("try-go").disabled = true;
  try {
    const res = await fetch("/v1/completions", { method: "POST", headers: headers(true), body: JSON.stringify({
      model: $("try-model").value, prompt: $("try-prompt").value, max_tokens: +$("try-tokens").value,
      temperature: +$("try-temp").value, top_k: 40, top_p: 0.95, stream: true }) });
    if (!res.ok) throw new Error(((await res.json()).error || {}).message || res.statusText);
    const reader = res.body.getReader(), dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const line = buf.slice(0, i).replace(/^data: /, "");
        buf = buf.slice(i + 2);
        if (line === "[DONE]") continue;
        const ev = JSON.parse(line);
        if (ev.error) throw new Error(ev.error.message);
        out.textContent += ev.choices[0].text;
      }
    }
  } catch (e) {
    out.textContent += "\n[error: " + e.message + "]";
  } finally {
    $("try-go").disabled = false;
  }
});

async function loadBets() {
  const bets = await api("/estate/bets");
  $("bets").replaceChildren(...bets.map((b) => el("div", { class: "bet" },
    el("h3", {}, `Bet ${b.bet}: ${b.name.replaceAll("_", " ")}${b.quick ? " (quick run)" : ""}`),
    el("p", {}, b.summary_line),
    b.plot ? el("a", { href: b.plot, target: "_blank" }, el("img", { src: b.plot, alt: b.name, loading: "lazy" })) : "")));
  if (!bets.length) $("bets").replaceChildren(el("p", { class: "hint" }, "no results (start the server with --results DIR)"));
}

async function start() {
  try {
    const h = await api("/healthz");
    $("status").textContent = `base ${h.base} · ${h.registry || "no registry"} · ${h.requests} requests served`;
  } catch (e) {
    $("status").textContent = "server unreachable: " + e.message;
  }
  await Promise.all([loadPeople(), loadLineage(), loadBets()].map((p) => p.catch((e) => {
    $("status").textContent += " · " + e.message;
  })));
  document.body.dataset.ready = "1";
}
start();
