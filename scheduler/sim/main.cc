// tideslice-sim: the placement core without a cluster (commands.* has the commands and usage).
#include "scheduler/sim/commands.h"

int main(int argc, char** argv) { return tideslice::sim::RunSimCommandLine(argc, argv); }
