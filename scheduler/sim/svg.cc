#include "scheduler/sim/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace tideslice::sim {
namespace {

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

}  // namespace

std::string LineChartSvg(const ChartOptions& o, const std::vector<Series>& series) {
  const double W = 820, H = 500, left = 70, right = 190, top = 50, bottom = 60;
  const double pw = W - left - right, ph = H - top - bottom;
  auto X = [&](double x) { return left + (x - o.x_min) / std::max(1e-9, o.x_max - o.x_min) * pw; };
  auto Y = [&](double y) { return top + ph - (y - o.y_min) / std::max(1e-9, o.y_max - o.y_min) * ph; };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W
    << " " << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << "<text x=\"" << W / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">" << Escape(o.title) << "</text>\n";
  // grid and ticks
  for (int i = 0; i <= 10; ++i) {
    double yv = o.y_min + (o.y_max - o.y_min) * i / 10.0;
    double xv = o.x_min + (o.x_max - o.x_min) * i / 10.0;
    s << "<line x1=\"" << left << "\" y1=\"" << Num(Y(yv)) << "\" x2=\"" << left + pw << "\" y2=\"" << Num(Y(yv))
      << "\" stroke=\"#eee\"/>\n";
    s << "<text x=\"" << left - 6 << "\" y=\"" << Num(Y(yv) + 4) << "\" text-anchor=\"end\">" << Num(yv) << "</text>\n";
    s << "<line x1=\"" << Num(X(xv)) << "\" y1=\"" << top << "\" x2=\"" << Num(X(xv)) << "\" y2=\"" << top + ph
      << "\" stroke=\"#eee\"/>\n";
    s << "<text x=\"" << Num(X(xv)) << "\" y=\"" << top + ph + 16 << "\" text-anchor=\"middle\">" << Num(xv)
      << "</text>\n";
  }
  for (const auto& [x, label] : o.x_marks) {
    s << "<line x1=\"" << Num(X(x)) << "\" y1=\"" << top << "\" x2=\"" << Num(X(x)) << "\" y2=\"" << top + ph
      << "\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>\n";
    s << "<text x=\"" << Num(X(x) + 3) << "\" y=\"" << top + 12 << "\" fill=\"#666\">" << Escape(label) << "</text>\n";
  }
  s << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
    << "\" fill=\"none\" stroke=\"#333\"/>\n";
  s << "<text x=\"" << left + pw / 2 << "\" y=\"" << H - 18 << "\" text-anchor=\"middle\">" << Escape(o.x_label)
    << "</text>\n";
  s << "<text transform=\"translate(18," << top + ph / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
    << Escape(o.y_label) << "</text>\n";
  for (size_t i = 0; i < series.size(); ++i) {
    const char* color = kColors[i % (sizeof kColors / sizeof *kColors)];
    s << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
    for (const auto& [x, y] : series[i].points)
      s << Num(X(std::clamp(x, o.x_min, o.x_max))) << "," << Num(Y(std::clamp(y, o.y_min, o.y_max))) << " ";
    s << "\"/>\n";
    double ly = top + 14 + 20.0 * i;
    s << "<line x1=\"" << left + pw + 14 << "\" y1=\"" << ly << "\" x2=\"" << left + pw + 40 << "\" y2=\"" << ly
      << "\" stroke=\"" << color << "\" stroke-width=\"3\"/>\n";
    s << "<text x=\"" << left + pw + 46 << "\" y=\"" << ly + 4 << "\">" << Escape(series[i].name) << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

}  // namespace tideslice::sim
