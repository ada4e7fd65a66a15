// tillgate console: the live orders list (Server-Sent Events) and the SMS
// template preview with its encoding and part counter. No inline script
// anywhere: the Content-Security-Policy allows only this file.
"use strict";

(function liveOrders() {
  const table = document.getElementById("orders");
  if (!table || !window.EventSource) return;
  const body = document.getElementById("orders-body");
  const count = document.getElementById("live-count");
  let n = 0;
  const es = new EventSource(table.dataset.live);
  es.onmessage = function (msg) {
    let o;
    try { o = JSON.parse(msg.data); } catch (e) { return; }
    const empty = body.querySelector("tr.empty");
    if (empty) empty.remove();
    let row = body.querySelector('tr[data-guid="' + o.guid + '"]');
    if (!row) {
      row = document.createElement("tr");
      row.dataset.guid = o.guid;
      body.insertBefore(row, body.firstChild);
    }
    row.textContent = "";
    const link = document.createElement("a");
    link.href = "/orders/" + encodeURIComponent(o.guid);
    link.textContent = o.guid.slice(0, 8);
    const cells = [link, o.rest_code || "", o.status, o.opened_at || "", o.waiter || "", o.table || "", o.order_sum, o.paid_sum];
    cells.forEach(function (v, i) {
      const td = document.createElement("td");
      if (i >= 6) td.className = "num";
      if (typeof v === "string") td.textContent = v; else td.appendChild(v);
      row.appendChild(td);
    });
    row.className = "fresh live";
    n += 1;
    if (count) count.textContent = String(n);
  };
})();

(function smsCounter() {
  const tpl = document.getElementById("sms-template");
  if (!tpl) return;
  // GSM 03.38, as the server counts it (src/sms/template.rs).
  const BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  const EXT = "^{}\\[~]|€\f";
  const nameInput = document.getElementById("sms-name");
  function render(text) {
    const name = (nameInput && nameInput.value.trim()) || tpl.dataset.restaurant;
    const vars = { order_number: "12345", restaurant_name: name, status: "собирается", table: "12", order_sum: "12\u00a0345,50" };
    return text.replace(/\{\s*([a-z_]+)\s*\}/g, function (m, k) { return k in vars ? vars[k] : m; });
  }
  function measure(text) {
    let septets = 0, gsm = true, utf16 = 0;
    for (const ch of text) {
      utf16 += ch.length;
      if (BASIC.indexOf(ch) >= 0) septets += 1;
      else if (EXT.indexOf(ch) >= 0) septets += 2;
      else gsm = false;
    }
    const [units, single, multi, enc] = gsm ? [septets, 160, 153, "GSM-7"] : [utf16, 70, 67, "UCS-2"];
    const parts = units === 0 ? 0 : (units <= single ? 1 : Math.ceil(units / multi));
    return { enc: enc, units: units, parts: parts };
  }
  function update() {
    const text = render(tpl.value);
    document.getElementById("sms-preview").textContent = text;
    const m = measure(text);
    document.getElementById("sms-encoding").textContent = m.enc;
    document.getElementById("sms-units").textContent = String(m.units);
    document.getElementById("sms-parts").textContent = String(m.parts);
  }
  tpl.addEventListener("input", update);
  if (nameInput) nameInput.addEventListener("input", update);
  update();
})();
