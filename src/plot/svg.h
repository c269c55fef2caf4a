// Small, dependency-free SVG charts for experiment results: line charts (optionally log-scaled),
// grouped bar charts and heatmaps. Output is deterministic text (fixed number formatting), so a
// results file and its plot change only when the numbers do.
#pragma once
#include <string>
#include <vector>

namespace heirloom::plot {

struct Series {
  std::string label;
  std::vector<double> x, y;
  bool dashed = false;
};

struct LineChart {
  std::string title, x_label, y_label;
  bool log_y = false;
  std::vector<Series> series;
};

struct BarChart {  // groups along x, one bar per series in each group
  std::string title, y_label;
  bool log_y = false;
  std::vector<std::string> groups;
  std::vector<std::string> series_labels;
  std::vector<std::vector<double>> values;  // [series][group]
};

struct Heatmap {  // rows × columns of values, each cell labelled with its value (a non-finite one: grey, "—")
  std::string title, row_label, col_label;
  std::vector<std::string> rows, cols;
  std::vector<std::vector<double>> values;  // [row][col]
  int decimals = 1;
};

std::string render(const LineChart& c);
std::string render(const BarChart& c);
std::string render(const Heatmap& c);

// Several charts stacked vertically in one SVG document.
std::string stack(const std::vector<std::string>& svgs);

}  // namespace heirloom::plot
