#include "scheduler/sim/svg.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tideslice::sim {
namespace {

using ::testing::HasSubstr;

TEST(Svg, DrawsOnePolylinePerSeriesWithEscapedLabels) {
  ChartOptions o;
  o.title = "a < b & c";
  Series s1{"fragaware", {{0, 0}, {50, 50}, {100, 90}}};
  Series s2{"random", {{0, 0}, {100, 80}}};
  std::string svg = LineChartSvg(o, {s1, s2});
  EXPECT_THAT(svg, HasSubstr("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_THAT(svg, HasSubstr("a &lt; b &amp; c"));
  size_t count = 0;
  for (size_t pos = svg.find("<polyline"); pos != std::string::npos; pos = svg.find("<polyline", pos + 1)) ++count;
  EXPECT_EQ(count, 2u);
  EXPECT_THAT(svg, HasSubstr("</svg>"));
}

}  // namespace
}  // namespace tideslice::sim
