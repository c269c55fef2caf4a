// SVG charts: well-formed documents, escaped labels, points where the axes put them, no "-0" labels.
#include <gtest/gtest.h>

#include "plot/svg.h"

namespace heirloom::plot {
namespace {

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(Svg, LineChartPlotsEveryPointAndEscapesLabels) {
  LineChart c{"a <title> & more", "step", "ppl", true, {{"one", {0, 1, 2}, {100, 10, 1}, false}, {"two", {0, 2}, {50, 5}, true}}};
  const std::string s = render(c);
  EXPECT_EQ(s.rfind("<svg", 0), 0u);
  EXPECT_EQ(count(s, "<polyline"), 2);
  EXPECT_NE(s.find("a &lt;title&gt; &amp; more"), std::string::npos);
  EXPECT_EQ(s.find("<title>"), std::string::npos);
  // Log axis from 1 to 100: the first series falls in equal steps (100 → 10 → 1).
  const size_t pts = s.find("points=\"") + 8;
  float x0, y0, x1, y1, x2, y2;
  ASSERT_EQ(std::sscanf(s.c_str() + pts, "%f,%f %f,%f %f,%f", &x0, &y0, &x1, &y1, &x2, &y2), 6);
  EXPECT_NEAR(y1 - y0, y2 - y1, 0.2);
  EXPECT_NEAR(x1 - x0, x2 - x1, 0.2);
  EXPECT_EQ(render(c), s);  // deterministic
}

TEST(Svg, BarsHeatmapAndStack) {
  BarChart b{"bars", "change", false, {"a", "b"}, {"x", "y"}, {{1, -2}, {3, 4}}};
  const std::string bs = render(b);
  EXPECT_EQ(count(bs, "<rect x="), 4);
  EXPECT_EQ(bs.find(">-0<"), std::string::npos);
  Heatmap h{"heat", "rows", "cols", {"r1", "r2"}, {"c1", "c2"}, {{0.0, -0.2}, {1.0, 2.0}}, 0};
  const std::string hs = render(h);
  EXPECT_EQ(count(hs, "stroke=\"white\""), 4);
  EXPECT_EQ(hs.find(">-0<"), std::string::npos);
  const std::string st = stack({bs, hs});
  EXPECT_EQ(count(st, "<svg"), 3);
  EXPECT_NE(st.find("y=\"380\""), std::string::npos);
}

}  // namespace
}  // namespace heirloom::plot
