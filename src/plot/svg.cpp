// SVG charts. See svg.h.
#include "plot/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace heirloom::plot {

namespace {

constexpr int kW = 760, kH = 380, kLeft = 72, kRight = 190, kTop = 44, kBottom = 56;
const char* const kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                               "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string num(double v) {
  char b[32];
  if (std::abs(v) < 1e-9) v = 0;  // a tick at 0 computed as -1e-17 must not print "-0"
  if (v != 0 && (std::abs(v) >= 1e5 || std::abs(v) < 1e-3)) std::snprintf(b, sizeof b, "%.2g", v);
  else std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

std::string xml(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

std::string fmt(const char* f, double a, double b = 0, double c = 0, double d = 0) {
  char buf[160];
  std::snprintf(buf, sizeof buf, f, a, b, c, d);
  return buf;
}

std::string text(double x, double y, const std::string& s, const char* anchor = "middle", int size = 12,
                 const char* extra = "") {
  return fmt("<text x=\"%.1f\" y=\"%.1f\"", x, y) + " font-size=\"" + std::to_string(size) + "\" text-anchor=\"" + anchor +
         "\" " + extra + ">" + xml(s) + "</text>\n";
}

// A y axis: value → pixel, with tick values.
struct Axis {
  double lo, hi;
  bool log;
  double px(double v) const {
    const double a = log ? std::log10(std::max(v, 1e-300)) : v, l = log ? std::log10(lo) : lo, h = log ? std::log10(hi) : hi;
    return kTop + (kH - kTop - kBottom) * (1.0 - (a - l) / (h - l));
  }
  std::vector<double> ticks() const {
    std::vector<double> t;
    if (log) {
      for (double p = std::pow(10.0, std::floor(std::log10(lo))); p <= hi * 1.0001; p *= 10)
        for (double m : {1.0, 2.0, 5.0})
          if (p * m >= lo * 0.9999 && p * m <= hi * 1.0001) t.push_back(p * m);
      return t;
    }
    const double raw = (hi - lo) / 5, mag = std::pow(10.0, std::floor(std::log10(raw)));
    const double step = raw / mag < 2 ? 2 * mag : raw / mag < 5 ? 5 * mag : 10 * mag;
    for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) t.push_back(v);
    return t;
  }
};

Axis make_axis(std::vector<double> vals, bool log, bool from_zero) {
  vals.erase(std::remove_if(vals.begin(), vals.end(), [&](double v) { return !std::isfinite(v) || (log && v <= 0); }), vals.end());
  if (vals.empty()) return {log ? 1.0 : 0.0, log ? 10.0 : 1.0, log};
  double lo = *std::min_element(vals.begin(), vals.end()), hi = *std::max_element(vals.begin(), vals.end());
  if (log) {
    lo = std::pow(10.0, std::floor(std::log10(lo)));
    hi = std::pow(10.0, std::ceil(std::log10(hi)));
    if (hi <= lo) hi = lo * 10;
    return {lo, hi, true};
  }
  if (from_zero) lo = std::min(lo, 0.0);
  if (hi <= lo) hi = lo + 1;
  const double pad = 0.05 * (hi - lo);
  return {from_zero && lo >= 0 ? lo : lo - pad, hi + pad, false};
}

std::string header(const std::string& title) {
  return fmt("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" ", kW, kH, kW, kH) +
         "font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n" +
         text(kW / 2.0, 24, title, "middle", 15, "font-weight=\"bold\"");
}

std::string y_axis(const Axis& ax, const std::string& label) {
  std::string s;
  const int x0 = kLeft, x1 = kW - kRight;
  for (double t : ax.ticks()) {
    const double y = ax.px(t);
    s += fmt("<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", x0, y, x1, y);
    s += text(x0 - 6, y + 4, num(t), "end", 11);
  }
  s += fmt("<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", x0, kTop, x0, kH - kBottom);
  s += fmt("<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", x0, kH - kBottom, x1, kH - kBottom);
  s += "<text x=\"16\" y=\"" + std::to_string((kTop + kH - kBottom) / 2) + "\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 16 " +
       std::to_string((kTop + kH - kBottom) / 2) + ")\">" + xml(label) + "</text>\n";
  return s;
}

std::string legend_entry(int i, const std::string& label, const char* color, bool dashed) {
  const double y = kTop + 8 + 18.0 * i, x = kW - kRight + 14;
  return fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" ", x, y, x + 22, y) + "stroke=\"" + color +
         "\" stroke-width=\"2.5\"" + (dashed ? " stroke-dasharray=\"5,3\"" : "") + "/>\n" + text(x + 28, y + 4, label, "start", 11);
}

}  // namespace

std::string render(const LineChart& c) {
  std::vector<double> ys, xs;
  for (const auto& s : c.series) {
    ys.insert(ys.end(), s.y.begin(), s.y.end());
    xs.insert(xs.end(), s.x.begin(), s.x.end());
  }
  const Axis ay = make_axis(ys, c.log_y, false);
  double xlo = xs.empty() ? 0 : *std::min_element(xs.begin(), xs.end()), xhi = xs.empty() ? 1 : *std::max_element(xs.begin(), xs.end());
  if (xhi <= xlo) xhi = xlo + 1;
  auto px = [&](double x) { return kLeft + (kW - kLeft - kRight) * (x - xlo) / (xhi - xlo); };
  std::string s = header(c.title) + y_axis(ay, c.y_label);
  for (double t : Axis{xlo, xhi, false}.ticks()) s += text(px(t), kH - kBottom + 16, num(t), "middle", 11);
  s += text((kLeft + kW - kRight) / 2.0, kH - 14, c.x_label);
  for (size_t i = 0; i < c.series.size(); ++i) {
    const Series& se = c.series[i];
    const char* color = kColors[i % 10];
    std::string pts;
    for (size_t k = 0; k < se.x.size() && k < se.y.size(); ++k)
      if (std::isfinite(se.y[k]) && (!c.log_y || se.y[k] > 0)) pts += fmt("%.1f,%.1f ", px(se.x[k]), ay.px(se.y[k]));
    s += "<polyline fill=\"none\" stroke=\"" + std::string(color) + "\" stroke-width=\"2\"" +
         (se.dashed ? " stroke-dasharray=\"5,3\"" : "") + " points=\"" + pts + "\"/>\n";
    s += legend_entry((int)i, se.label, color, se.dashed);
  }
  return s + "</svg>\n";
}

std::string render(const BarChart& c) {
  std::vector<double> all;
  for (const auto& v : c.values) all.insert(all.end(), v.begin(), v.end());
  const Axis ay = make_axis(all, c.log_y, true);
  std::string s = header(c.title) + y_axis(ay, c.y_label);
  const size_t G = c.groups.size(), S = c.series_labels.size();
  const double gw = (double)(kW - kLeft - kRight) / std::max<size_t>(G, 1), bw = gw * 0.8 / std::max<size_t>(S, 1);
  const double base = c.log_y ? kH - kBottom : ay.px(0);
  for (size_t g = 0; g < G; ++g) {
    const double gx = kLeft + gw * g + gw * 0.1;
    for (size_t k = 0; k < S && k < c.values.size(); ++k) {
      if (g >= c.values[k].size() || !std::isfinite(c.values[k][g])) continue;
      const double y = ay.px(c.values[k][g]);
      s += fmt("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" ", gx + bw * k, std::min(y, base), bw * 0.95, std::abs(base - y)) +
           "fill=\"" + kColors[k % 10] + "\"><title>" + xml(c.series_labels[k] + " / " + c.groups[g] + ": " + num(c.values[k][g])) +
           "</title></rect>\n";
    }
    const double lx = gx + gw * 0.4, ly = kH - kBottom + 14;  // slanted, so long names do not collide
    s += text(lx, ly, c.groups[g], "end", 10, fmt("transform=\"rotate(-25 %.1f %.1f)\"", lx, ly).c_str());
  }
  for (size_t k = 0; k < S; ++k) s += legend_entry((int)k, c.series_labels[k], kColors[k % 10], false);
  return s + "</svg>\n";
}

std::string render(const Heatmap& c) {
  std::string s = header(c.title);
  const size_t R = c.rows.size(), K = c.cols.size();
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& r : c.values)
    for (double v : r)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  const double x0 = 150, y0 = kTop + 40, cw = (kW - x0 - 30) / std::max<size_t>(K, 1), ch = (kH - y0 - 30) / std::max<size_t>(R, 1);
  for (size_t j = 0; j < K; ++j) s += text(x0 + cw * (j + 0.5), y0 - 8, c.cols[j], "middle", 9);
  s += text(x0 + (kW - x0 - 30) / 2, kTop + 12, c.col_label, "middle", 12);
  for (size_t i = 0; i < R; ++i) {
    s += text(x0 - 6, y0 + ch * (i + 0.5) + 4, c.rows[i], "end", 10);
    for (size_t j = 0; j < K && j < c.values[i].size(); ++j) {
      const double v = c.values[i][j], t = hi > lo && std::isfinite(v) ? (v - lo) / (hi - lo) : 0.5;
      const int shade = (int)std::lround(235 - 150 * t);  // light (low) to dark blue (high)
      char fill[16];
      std::snprintf(fill, sizeof fill, "#%02x%02xff", shade, shade);
      if (!std::isfinite(v)) std::snprintf(fill, sizeof fill, "#eeeeee");  // no value: grey, and a dash
      s += fmt("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" ", x0 + cw * j, y0 + ch * i, cw, ch) + "fill=\"" + fill +
           "\" stroke=\"white\"/>\n";
      char val[32];
      const double shown = std::abs(v) < 0.5 * std::pow(10.0, -c.decimals) ? 0.0 : v;  // no "-0"
      std::snprintf(val, sizeof val, "%.*f", c.decimals, shown);
      if (!std::isfinite(v)) std::snprintf(val, sizeof val, "—");
      s += text(x0 + cw * (j + 0.5), y0 + ch * (i + 0.5) + 4, val, "middle", 10);
    }
  }
  s += "<text x=\"14\" y=\"" + fmt("%.0f", y0 + ch * R / 2) + "\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 " +
       fmt("%.0f", y0 + ch * R / 2) + ")\">" + xml(c.row_label) + "</text>\n";
  return s + "</svg>\n";
}

std::string stack(const std::vector<std::string>& svgs) {
  std::string s = fmt("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\">\n", kW, (double)kH * svgs.size());
  for (size_t i = 0; i < svgs.size(); ++i) {
    std::string inner = svgs[i];
    const size_t open = inner.find("<svg ");
    inner.insert(open + 5, fmt("y=\"%.0f\" ", (double)kH * i));
    s += inner;
  }
  return s + "</svg>\n";
}

}  // namespace heirloom::plot
