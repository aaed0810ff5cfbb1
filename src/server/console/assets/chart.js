// Requests per minute by outcome, as stacked bars drawn in SVG (no chart library). The chart
// has a text alternative; the same numbers are in the totals table beside it.

import {h, svg} from "./dom.js";

export const OUTCOMES = ["allow", "deny", "require_approval", "require_more_context", "replay"];

export function decisionsChart(minutes, bucketSeconds) {
  const width = 960, height = 220, left = 40, bottom = 24, top = 10;
  const plotWidth = width - left - 10, plotHeight = height - top - bottom;
  const totals = minutes.map((m) => OUTCOMES.reduce((sum, o) => sum + (m.counts[o] || 0), 0));
  const max = Math.max(1, ...totals);
  const step = plotWidth / Math.max(1, minutes.length);
  const bars = [];
  minutes.forEach((minute, i) => {
    let y = top + plotHeight;
    for (const outcome of OUTCOMES) {
      const count = minute.counts[outcome] || 0;
      if (!count) continue;
      const barHeight = (count / max) * plotHeight;
      y -= barHeight;
      bars.push(svg("rect", {class: `bar ${outcome}`, x: (left + i * step + 1).toFixed(1), y: y.toFixed(1),
        width: Math.max(1, step - 2).toFixed(1), height: barHeight.toFixed(1)},
        svg("title", {}, `${new Date(minute.start * 1000).toISOString().slice(11, 16)} UTC: ${count} ${outcome}`)));
    }
  });
  const sum = totals.reduce((a, b) => a + b, 0);
  const label = `Requests per minute over the last hour by outcome: ${sum} in all, at most ${max} in one minute.`;
  const ticks = [0, Math.ceil(max / 2), max].map((value) => {
    const y = top + plotHeight - (value / max) * plotHeight;
    return [svg("line", {class: "axis", x1: left, x2: width - 10, y1: y, y2: y}),
      svg("text", {x: left - 6, y: y + 4, "text-anchor": "end"}, String(value))];
  });
  const first = minutes[0] ? minutes[0].start : 0;
  const times = [0, 15, 30, 45, 60].map((m) => svg("text", {x: left + (m * 60 / bucketSeconds) * step,
    y: height - 6, "text-anchor": m === 0 ? "start" : m === 60 ? "end" : "middle"}, new Date((first + m * 60) * 1000).toISOString().slice(11, 16)));
  return h("figure", {},
    svg("svg", {class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label},
      svg("title", {}, label), ticks, times, bars),
    h("figcaption", {},
      h("ul", {class: "legend", "aria-label": "Outcomes"}, OUTCOMES.map((o) =>
        h("li", {}, h("span", {class: `swatch ${o}`, "aria-hidden": "true"}), o.replaceAll("_", " "))))));
}
