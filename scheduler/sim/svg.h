// A small, dependency-free SVG line chart for the simulator's reports.
#pragma once

#include <string>
#include <vector>

namespace tideslice::sim {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y)
};

struct ChartOptions {
  std::string title;
  std::string x_label;
  std::string y_label;
  double x_min = 0, x_max = 100, y_min = 0, y_max = 100;
  std::vector<std::pair<double, std::string>> x_marks;  // vertical reference lines
};

std::string LineChartSvg(const ChartOptions& options, const std::vector<Series>& series);

}  // namespace tideslice::sim
