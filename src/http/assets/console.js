// Fjord console: a few pages over the JSON API under /api/. No framework, no build step; every
// piece of broker data reaches the page through textContent (never innerHTML).
"use strict";

let readonly = false;
let timer = null;
let loaded = [];
// With an authorizer the API answers 401 until a login; the server checks every call as the user.
class Unauthorized extends Error {}

// el("tag.class", {attr}, children...) -> element; strings become text nodes.
function el(spec, attrs, ...kids) {
  const [tag, ...classes] = spec.split(".");
  const e = document.createElement(tag);
  if (classes.length) e.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}

async function api(path) {
  const r = await fetch("api/" + path, { headers: { Accept: "application/json" } });
  const body = await r.json();
  if (r.status === 401) throw new Unauthorized(body.error);
  if (!r.ok) throw new Error(body.error_name || body.error || r.statusText);
  return body;
}

async function act(path, body) {
  const r = await fetch("api/" + path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Fjord-Console": "1" },
    body: JSON.stringify(body),
  });
  const out = await r.json();
  if (r.status === 401 && path !== "login") throw new Unauthorized(out.error);
  if (!r.ok) throw new Error(out.error || r.statusText);
  return out;
}

function toast(msg, err) {
  const t = document.getElementById("toast");
  t.textContent = msg;
  t.className = "show" + (err ? " err" : "");
  clearTimeout(t._h);
  t._h = setTimeout(() => (t.className = ""), 4000);
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}
const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString());
const enc = encodeURIComponent;

function table(headers, rows, id) {
  return el("div.scroll", {}, el("table", { id },
    el("thead", {}, el("tr", {}, headers.map((h) => el(h.startsWith("#") ? "th.num" : "th", {}, h.replace(/^#/, ""))))),
    el("tbody", {}, rows)));
}
const td = (v) => el("td", {}, v);
const tdn = (v) => el("td.num", {}, v);

function card(label, value, id) {
  return el("div.card", { id }, el("div.n", {}, value), el("div.l", {}, label));
}

// ---- pages ----

async function overview(app) {
  const o = await api("overview");
  const chart = throughputChart(o.throughput);
  app.replaceChildren(
    el("h1", {}, o.cluster ? "Cluster" : "Broker " + o.node_id),
    el("div.cards", { id: "overview-cards" },
      card("brokers", o.brokers.length), card("topics", o.topics, "card-topics"), card("partitions", o.partitions),
      card("messages", num(o.messages)), card("size", bytes(o.size_bytes)), card("groups", o.groups),
      card("under-replicated", o.under_replicated), card("offline", o.offline)),
    el("h2", {}, "Throughput (last " + Math.round((o.sample_interval_ms * 120) / 60000) + " minutes, per second)"),
    el("div.legend", {}, el("span.in", {}, "messages in"), el("span.out", {}, "bytes out / 1 KiB")),
    chart,
    el("h2", {}, "Brokers"),
    table(["#Id", "Host", "#Port", "Rack"], o.brokers.map((b) => el("tr", {}, tdn(b.id), td(b.host), tdn(b.port), td(b.rack || "–"))), "brokers"));
  timer = setTimeout(() => route(), o.sample_interval_ms || 5000);
}

function throughputChart(samples) {
  // The SVG stretches to its box (preserveAspectRatio none, strokes kept thin); labels are HTML.
  const W = 600, H = 180;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "chart");
  svg.setAttribute("id", "throughput");
  const a = samples.map((s) => s.messages_in), b = samples.map((s) => s.bytes_out / 1024);
  const max = Math.max(1, ...a, ...b);
  const line = (vals, cls) => {
    if (vals.length < 2) return;
    const e = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    e.setAttribute("points", vals.map((v, i) => `${(i * W) / (vals.length - 1)},${H - 4 - (v / max) * (H - 12)}`).join(" "));
    e.setAttribute("class", cls);
    e.setAttribute("vector-effect", "non-scaling-stroke");
    svg.append(e);
  };
  line(a, "in");
  line(b, "out");
  return el("div.chartbox", {}, svg, el("span.ymax", {}, max.toFixed(max < 10 ? 1 : 0)), el("span.ymin", {}, "0"),
    samples.length < 2 ? el("span.wait", {}, "collecting samples…") : null);
}

async function topics(app) {
  const ts = await api("topics");
  const form = el("form.row.mutating", { id: "create-topic", onsubmit: async (e) => {
    e.preventDefault();
    const f = e.target;
    try {
      const name = f.elements.namedItem("topicname").value.trim();
      await act("topics/create", { name, partitions: Number(f.partitions.value), replication_factor: Number(f.rf.value) });
      toast("Topic " + name + " created");
      route();
    } catch (err) { toast(err.message, true); }
  } },
    el("label", {}, "Name", el("input", { name: "topicname", id: "new-topic-name", required: true, pattern: "[a-zA-Z0-9._\\-]+", maxlength: 249 })),
    el("label", {}, "Partitions", el("input", { name: "partitions", id: "new-topic-partitions", type: "number", min: 1, max: 1000, value: 1 })),
    el("label", {}, "Replication factor", el("input", { name: "rf", type: "number", min: -1, max: 32, value: -1, title: "-1: the broker's default" })),
    el("button", { type: "submit", id: "create-topic-submit" }, "Create topic"));
  app.replaceChildren(el("h1", {}, "Topics"), form,
    table(["Name", "#Partitions", "#Messages", "#Size"], ts.map((t) => el("tr", {},
      td(el("a", { href: "#/topic/" + enc(t.name) }, t.name), t.internal ? el("span.muted", {}, " internal") : null),
      tdn(t.partitions), tdn(num(t.messages)), tdn(bytes(t.size_bytes)))), "topics-table"));
}

async function topic(app, name) {
  const t = await api("topic?name=" + enc(name));
  const del = el("button.danger.mutating", { id: "delete-topic", onclick: async () => {
    if (!confirm("Delete topic " + name + " and all its records?")) return;
    try { await act("topics/delete", { name }); toast("Topic " + name + " deleted"); location.hash = "#/topics"; } catch (err) { toast(err.message, true); }
  } }, "Delete topic");
  app.replaceChildren(
    el("h1", {}, "Topic " + t.name),
    el("p", {}, el("a", { href: "#/messages/" + enc(t.name) }, "Browse messages"), " · ",
      el("a.mutating", { href: "#/produce/" + enc(t.name) }, "Produce a record"), " · ", el("span.muted", {}, "id " + t.id)),
    el("h2", {}, "Partitions"),
    table(["#Partition", "#Leader", "Replicas", "ISR", "#Log start", "#Log end", "#High watermark", "#Size"], t.partitions.map((p) => el("tr", {},
      tdn(p.partition), tdn(p.leader), td(p.replicas.join(",")), td(p.isr.join(",")), tdn(num(p.log_start_offset)), tdn(num(p.log_end_offset)),
      tdn(num(p.high_watermark)), tdn(bytes(p.size_bytes)))), "partitions-table"),
    el("h2", {}, "Configs"),
    t.configs_error ? el("p.muted", { id: "configs-error" }, t.configs_error + " (DESCRIBE_CONFIGS on the topic is needed)") :
    table(["Name", "Value", "Source"], t.configs.map((c) => el("tr", {}, td(c.name), td(c.value ?? "–"),
      td(el("span" + (c.source === "DYNAMIC_TOPIC_CONFIG" ? ".okc" : ".muted"), {}, c.source))))),
    t.internal ? null : el("p", {}, del));
}

function decode(field, fmt) {
  if (field === null || field === undefined) return "null";
  const bin = atob(field.b64);
  const u8 = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  const cut = field.truncated ? ` … (${field.size} bytes, cut)` : "";
  if (fmt === "hex") return Array.from(u8, (b) => b.toString(16).padStart(2, "0")).join(" ") + cut;
  const text = new TextDecoder("utf-8", { fatal: false }).decode(u8);
  if (fmt === "json") { try { return JSON.stringify(JSON.parse(text), null, 2) + cut; } catch (_) { return text + cut; } }
  return text + cut;
}

async function messages(app, name) {
  const ts = await api("topics");
  const sel = el("select", { name: "topic", id: "browse-topic" }, ts.map((t) => el("option", { value: t.name, selected: t.name === name }, t.name)));
  const part = el("select", { name: "partition", id: "browse-partition" }, el("option", { value: -1 }, "all"));
  const fillParts = () => {
    const t = ts.find((x) => x.name === sel.value);
    part.replaceChildren(el("option", { value: -1 }, "all"), ...Array.from({ length: t ? t.partitions : 0 }, (_, i) => el("option", { value: i }, String(i))));
  };
  sel.addEventListener("change", fillParts);
  fillParts();
  const mode = el("select", { name: "mode", id: "browse-mode" }, el("option", { value: "newest" }, "newest"), el("option", { value: "offset" }, "from offset"), el("option", { value: "timestamp" }, "from time"));
  const pos = el("input", { name: "pos", id: "browse-pos", placeholder: "offset or 2026-12-04T20:00" });
  const limit = el("input", { name: "limit", type: "number", min: 1, max: 500, value: 50, id: "browse-limit" });
  const fmt = el("select", { name: "fmt", id: "browse-format" }, ["text", "json", "hex"].map((f) => el("option", { value: f }, f)));
  const search = el("input", { type: "search", id: "browse-search", placeholder: "filter loaded records" });
  const out = el("div", { id: "browse-out" });
  const render = () => {
    const q = search.value.toLowerCase();
    // The search matches the records as text, whatever format shows them.
    const rows = loaded.map((r) => ({ r, k: decode(r.key, fmt.value), v: decode(r.value, fmt.value), h: r.headers.map((h) => h.key + "=" + decode(h.value, "text")).join("\n"),
      text: [decode(r.key, "text"), decode(r.value, "text")].join("\n") }))
      .filter((x) => !q || [x.k, x.v, x.h, x.text].join("\n").toLowerCase().includes(q));
    out.replaceChildren(el("p.muted", {}, rows.length + " of " + loaded.length + " loaded records, newest first"),
      table(["#Partition", "#Offset", "Timestamp", "Key", "Value", "Headers"], rows.map((x) => el("tr.record", {},
        tdn(x.r.partition), tdn(x.r.offset), td(new Date(x.r.timestamp).toISOString()),
        td(el("pre", {}, x.k)), td(el("pre.value", {}, x.v)), td(el("pre", {}, x.h)))), "records-table"));
  };
  const load = async (e) => {
    if (e) e.preventDefault();
    let q = "messages?topic=" + enc(sel.value) + "&partition=" + part.value + "&limit=" + Number(limit.value || 50);
    if (mode.value === "offset" && pos.value) q += "&offset=" + Number(pos.value);
    if (mode.value === "timestamp" && pos.value) q += "&timestamp=" + new Date(pos.value).getTime();
    try { const r = await api(q); loaded = r.records; render(); for (const er of r.errors) toast("partition " + er.partition + ": " + er.error, true); }
    catch (err) { toast(err.message, true); }
  };
  search.addEventListener("input", render);
  fmt.addEventListener("change", render);
  app.replaceChildren(el("h1", {}, "Messages"),
    el("form.row", { onsubmit: load, id: "browse-form" },
      el("label", {}, "Topic", sel), el("label", {}, "Partition", part), el("label", {}, "Start", mode), el("label", {}, "Offset / time", pos),
      el("label", {}, "Max records", limit), el("button", { type: "submit", id: "browse-load" }, "Load"),
      el("label", {}, "Show as", fmt), el("label", {}, "Search", search)),
    out);
  loaded = [];
  if (sel.value) load();
}

async function groups(app) {
  const gs = await api("groups");
  app.replaceChildren(el("h1", {}, "Consumer groups"),
    gs.length ? table(["Group", "State", "Type", "#Partitions", "#Lag"], gs.map((g) => el("tr", {},
      td(el("a", { href: "#/group/" + enc(g.group_id) }, g.group_id)), td(el("span.pill." + g.state, {}, g.state)), td(g.type),
      tdn(g.partitions), tdn(num(g.lag)))), "groups-table") : el("p.muted", {}, "No groups yet."));
}

async function group(app, id) {
  const g = await api("group?id=" + enc(id));
  const topicsOf = [...new Set(g.offsets.map((o) => o.topic))];
  const empty = g.state === "Empty";
  const reset = el("form.row.mutating", { id: "reset-form", onsubmit: async (e) => {
    e.preventDefault();
    const f = e.target;
    const body = { group: id, topic: f.topic.value, to: f.to.value };
    if (f.to.value === "timestamp") body.timestamp = new Date(f.ts.value).getTime();
    try { await act("groups/reset", body); toast("Offsets reset"); route(); } catch (err) { toast(err.message, true); }
  } },
    el("label", {}, "Topic", el("select", { name: "topic" }, topicsOf.map((t) => el("option", { value: t }, t)))),
    el("label", {}, "Reset to", el("select", { name: "to" }, ["earliest", "latest", "timestamp"].map((t) => el("option", { value: t }, t)))),
    el("label", {}, "Time", el("input", { name: "ts", type: "datetime-local" })),
    el("button", { type: "submit", disabled: !empty || !topicsOf.length }, "Reset offsets"),
    empty ? null : el("span.muted", {}, "Only an empty group can be reset: stop its consumers first."));
  app.replaceChildren(
    el("h1", {}, "Group " + id),
    el("div.cards", {}, card("state", g.state, "group-state"), card("protocol", (g.protocol_type || "–") + (g.protocol ? " / " + g.protocol : "")),
      card("members", g.members.length), card("total lag", num(g.lag), "group-lag")),
    el("h2", {}, "Members"),
    g.members.length ? table(["Member", "Client", "Host", "#Epoch", "Assignment"], g.members.map((m) => el("tr", {},
      td(m.member_id), td(m.client_id), td(m.client_host), tdn(m.member_epoch === undefined ? "–" : m.member_epoch),
      td(m.assignment.map((a) => a.topic + ": " + a.partitions.join(",")).join("; ") || "–"))), "members-table") : el("p.muted", {}, "No members."),
    el("h2", {}, "Offsets and lag"),
    table(["Topic", "#Partition", "#Committed", "#High watermark", "#Lag"], [
      ...g.offsets.map((o) => el("tr", {}, td(o.topic), tdn(o.partition), tdn(num(o.committed)), tdn(num(o.high_watermark)), tdn(num(o.lag)))),
      el("tr", {}, el("th", {}, "Total"), td(""), td(""), td(""), el("th.num", { id: "lag-total" }, num(g.lag)))], "offsets-table"),
    el("h2.mutating", {}, "Reset offsets"), reset);
}

async function produce(app, name) {
  const ts = (await api("topics")).filter((t) => !t.internal);
  const form = el("form.row", { id: "produce-form", onsubmit: async (e) => {
    e.preventDefault();
    const f = e.target;
    const headers = f.headers.value.split("\n").filter((l) => l.trim()).map((l) => { const i = l.indexOf("="); return i < 0 ? { key: l, value: "" } : { key: l.slice(0, i), value: l.slice(i + 1) }; });
    const body = { topic: f.topic.value, key: f.key.value, value: f.value.value, headers };
    if (f.partition.value !== "") body.partition = Number(f.partition.value);
    try { const r = await act("produce", body); toast(`Produced to partition ${r.partition} at offset ${r.offset}`); document.getElementById("produce-result").textContent = `partition ${r.partition}, offset ${r.offset}`; }
    catch (err) { toast(err.message, true); }
  } },
    el("label", {}, "Topic", el("select", { name: "topic", id: "produce-topic" }, ts.map((t) => el("option", { value: t.name, selected: t.name === name }, t.name)))),
    el("label", {}, "Partition", el("input", { name: "partition", id: "produce-partition", type: "number", min: 0, placeholder: "by key" })),
    el("label", {}, "Key", el("input", { name: "key", id: "produce-key" })),
    el("label", {}, "Value", el("textarea", { name: "value", id: "produce-value" })),
    el("label", {}, "Headers (key=value per line)", el("textarea", { name: "headers", id: "produce-headers" })),
    el("button", { type: "submit", id: "produce-submit" }, "Produce"));
  app.replaceChildren(el("h1", {}, "Produce a record"), readonly ? el("p.bad", {}, "The console is read-only.") : form, el("p", { id: "produce-result" }));
}

async function loginPage(app) {
  clearTimeout(timer);
  const form = el("form.row", { id: "login-form", onsubmit: async (e) => {
    e.preventDefault();
    const f = e.target;
    try {
      const r = await act("login", { user: f.user.value, password: f.password.value });
      showUser(r.user);
      route();
    } catch (err) { toast(err.message, true); f.password.value = ""; }
  } },
    el("label", {}, "User", el("input", { name: "user", id: "login-user", autocomplete: "username", required: true })),
    el("label", {}, "Password", el("input", { name: "password", id: "login-password", type: "password", autocomplete: "current-password", required: true })),
    el("button", { type: "submit", id: "login-submit" }, "Log in"));
  app.replaceChildren(el("h1", {}, "Log in"),
    el("p.muted", {}, "A SCRAM or PLAIN user of this broker; the console acts as that user, with its ACLs."), form);
}

function showUser(user) {
  const who = document.getElementById("user");
  if (!user) { who.replaceChildren(); return; }
  who.replaceChildren(el("span", { id: "user-name" }, user), " ",
    el("button", { id: "logout", onclick: async () => {
      try { await act("logout", {}); } catch (_) { /* the session is gone either way */ }
      showUser(null);
      loginPage(document.getElementById("app"));
    } }, "Log out"));
}

// ---- routing ----

async function route() {
  clearTimeout(timer);
  const app = document.getElementById("app");
  const [page, arg] = location.hash.replace(/^#\/?/, "").split("/");
  const name = arg ? decodeURIComponent(arg) : "";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.id === "nav-" + ({ topic: "topics", group: "groups" }[page] || page || "overview"));
  try {
    switch (page) {
      case "topics": return await topics(app);
      case "topic": return await topic(app, name);
      case "messages": return await messages(app, name);
      case "groups": return await groups(app);
      case "group": return await group(app, name);
      case "produce": return await produce(app, name);
      default: return await overview(app);
    }
  } catch (err) {
    if (err instanceof Unauthorized) { showUser(null); return loginPage(app); }
    app.replaceChildren(el("p.bad", {}, "Error: " + err.message));
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", async () => {
  try {
    const s = await api("session");
    readonly = s.readonly;
    showUser(s.user);
  } catch (_) { /* the page shows the error */ }
  document.body.classList.toggle("readonly", readonly);
  document.getElementById("mode").textContent = readonly ? "read-only" : "";
  route();
});
