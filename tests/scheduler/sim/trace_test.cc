#include "scheduler/sim/trace.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tideslice::sim {
namespace {

using ::testing::HasSubstr;

TEST(TraceCsv, ParsesNodes) {
  auto n = ParseNodeCsv("sn,cpu_milli,memory_mib,gpu,model\r\nn0,64000,262144,2,P100\nn1,96000,786432,8,G2\n\n", "nodes.csv");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  ASSERT_EQ(n->size(), 2u);
  EXPECT_EQ((*n)[1].gpus, 8);
  EXPECT_EQ((*n)[0].model, "P100");
}

TEST(TraceCsv, ParsesPodsWithAndWithoutGpuSpec) {
  auto p = ParsePodCsv(
      "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"
      "p0,12000,16384,1,1000,,LS,Running,0,12537496,0\n"
      "p1,6000,12288,1,460,V100M16|V100M32,LS,Running,427061,12902960,427061\n"
      "p2,4000,8192,0,0,,BE,Running,1,2,1\n",
      "pods.csv");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(p->size(), 3u);
  EXPECT_EQ((*p)[1].gpu_spec, (std::vector<std::string>{"V100M16", "V100M32"}));
  EXPECT_EQ((*p)[0].TotalGpuMilli(), 1000);
  auto five = ParsePodCsv("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1,1,8,1000\n", "multigpu.csv");
  ASSERT_TRUE(five.ok());
  EXPECT_EQ((*five)[0].TotalGpuMilli(), 8000);
}

struct Bad {
  std::string text, where, what;
};
void PrintTo(const Bad& f, std::ostream* os) { *os << f.where; }


class TraceCsvRejects : public ::testing::TestWithParam<Bad> {};

TEST_P(TraceCsvRejects, NamingFileLineAndColumn) {
  const auto& b = GetParam();
  bool nodes = b.text.rfind("sn,", 0) == 0 || b.text.empty() || b.text.rfind("x", 0) == 0;
  Status st = nodes ? ParseNodeCsv(b.text, "f.csv").status() : ParsePodCsv(b.text, "f.csv").status();
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.field(), HasSubstr(b.where));
  EXPECT_THAT(st.message(), HasSubstr(b.what));
}

INSTANTIATE_TEST_SUITE_P(
    Trace, TraceCsvRejects,
    ::testing::Values(Bad{"", "f.csv", "is empty"}, Bad{"x,y\n", "f.csv:1", "expected the header"},
                      Bad{"sn,cpu_milli,memory_mib,gpu,model\nn,1,1,99,T4\n", "f.csv:2 column gpu", "outside 0..32"},
                      Bad{"sn,cpu_milli,memory_mib,gpu,model\nn,1,1,2\n", "f.csv:2", "expected 5 fields"},
                      Bad{"sn,cpu_milli,memory_mib,gpu,model\nn,abc,1,2,T4\n", "column cpu_milli", "not a whole number"},
                      Bad{"sn,cpu_milli,memory_mib,gpu,model\nn,1,1,2,\n", "column model", "needs a model"},
                      Bad{"sn,cpu_milli,memory_mib,gpu,model\nn,1,1,2,T4\nn,1,1,2,T4\n", "f.csv:3 column sn", "duplicate"},
                      Bad{"name,cpu,mem\n", "f.csv:1", "lacks the column cpu_milli"},
                      Bad{"name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1,1,2,500\n", "column num_gpu", "exactly 1 GPU"},
                      Bad{"name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1,1,0,500\n", "column gpu_milli", "num_gpu is 0"},
                      Bad{"name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1,1,1,1001\n", "column gpu_milli", "outside"},
                      Bad{"name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,-1,1,1,100\n", "column cpu_milli", "outside"},
                      Bad{"name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\np,1,1,1,100,T4||A10\n", "column gpu_spec", "empty model"}),
    [](const auto& info) { return "case" + std::to_string(info.index); });

TEST(TraceCsv, MissingFileSaysWhereToLook) {
  auto r = LoadNodeCsv("/nonexistent/nodes.csv");
  EXPECT_THAT(r.status().message(), HasSubstr("alibaba-gpu-v2023"));
}

}  // namespace
}  // namespace tideslice::sim
