/*
 * presence-bench [C H K R I]: the presence-mix workload of
 * ../shared/bench/WORKLOAD.md on libpresence.
 *
 * stdout carries exactly the WORKLOAD.md lines (phase=..., checksum ...,
 * peak_rss_kb=...), so that it can be compared line for line with the
 * peers. stderr carries one extra note: the peak RSS of the bench's own
 * name tables, taken before the registry exists.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench-common.h"

#include <inttypes.h>

int main(int argc, char **argv) {
    bench_params p;
    bench_result r;

    bench_params_default(&p);
    bench_params_parse(&p, argc - 1, argv + 1);
    bench_workload_run(&p, NULL, &r);
    bench_result_print(stdout, &r);
    fprintf(stderr,
            "# libpresence %s, C=%" PRIu64 " H=%" PRIu64 " K=%" PRIu64
            " R=%" PRIu64 " I=%" PRIu64 ": names_rss_kb=%ld (before the "
            "registry), registry ~%.1f B/membership\n",
            presence_version(), p.C, p.H, p.K, p.R, p.I, r.names_rss_kb,
            p.C * p.K != 0 ? (double)(r.peak_rss_kb - r.names_rss_kb) * 1024.0 /
                            (double)(p.C * p.K)
                      : 0.0);
    return 0;
}
