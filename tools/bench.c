#include "cli.h"
int cli_bench(struct cli *c, int argc, char **argv) { return 2; }
int cli_demo(struct cli *c, int argc, char **argv) { return 2; }
