/*
 * presence-scaling scaling [C...]: the presence-mix workload at growing C
 * (default 20000 200000 2000000) with K=5 R=10 I=32, in two series:
 * H = C/10 (channels keep 50 members, the table of channels grows) and
 * H = 20000 (channels grow from 5 to 500 members). Each run is a child
 * process, so that each has its own peak RSS. Prints ns per operation of
 * each phase and the spread (max / min) of each phase across C.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench-common.h"
#include "bench-modes.h"

#include <inttypes.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SIZES 8

/* Run the workload in a child and read its result back through a pipe. */
static void run_child(const bench_params *p, bench_result *r) {
    int fd[2];
    pid_t pid;
    int status = 0;
    size_t got = 0;

    fflush(NULL);
    if (pipe(fd) != 0)
        bench_die("pipe failed");
    pid = fork();
    if (pid < 0)
        bench_die("fork failed");
    if (pid == 0) {
        bench_result res;
        const char *b = (const char *)&res;
        size_t done = 0;
        close(fd[0]);
        bench_workload_run(p, NULL, &res);
        while (done < sizeof res) {
            ssize_t n = write(fd[1], b + done, sizeof res - done);
            if (n <= 0)
                _exit(1);
            done += (size_t)n;
        }
        _exit(0);
    }
    close(fd[1]);
    while (got < sizeof *r) {
        ssize_t n = read(fd[0], (char *)r + got, sizeof *r - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd[0]);
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0 || got != sizeof *r)
        bench_die("workload C=%" PRIu64 " H=%" PRIu64 " failed", p->C, p->H);
}

static double ns_per_op(const bench_result *r, int ph) {
    return r->ops[ph] ? (double)r->ns[ph] / (double)r->ops[ph] : 0.0;
}

static void series(const char *title, const uint64_t *sizes, size_t n,
                   int fixed_h) {
    bench_result res[MAX_SIZES];
    double lo[BENCH_PHASES + 1] = {0}, hi[BENCH_PHASES + 1] = {0};

    printf("\n### %s\n\n", title);
    printf("| C | H | members/channel | memberships | join ns/op | stats "
           "ns/op | query ns/op | query ns/member | refresh ns/op | leave "
           "ns/op (client) | peak RSS B/membership |\n");
    printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
           "---: | ---: |\n");
    fflush(stdout);
    for (size_t s = 0; s < n; s++) {
        bench_params p;
        bench_result *r = &res[s];
        double v[BENCH_PHASES + 1];
        bench_params_default(&p);
        p.C = sizes[s];
        p.H = fixed_h ? 20000 : (sizes[s] / 10 < p.K ? p.K : sizes[s] / 10);
        run_child(&p, r);
        for (int ph = 0; ph < BENCH_PHASES; ph++)
            v[ph] = ns_per_op(r, ph);
        v[BENCH_PHASES] =
            r->listed ? (double)r->ns[BENCH_QUERY] / (double)r->listed : 0.0;
        for (int ph = 0; ph <= BENCH_PHASES; ph++) {
            if (s == 0 || v[ph] < lo[ph])
                lo[ph] = v[ph];
            if (s == 0 || v[ph] > hi[ph])
                hi[ph] = v[ph];
        }
        printf("| %" PRIu64 " | %" PRIu64 " | %.1f | %" PRIu64
               " | %.0f | %.0f | %.0f | %.1f | %.0f | %.0f | %.0f |\n",
               p.C, p.H, (double)(p.C * p.K) / (double)p.H, p.C * p.K,
               v[BENCH_JOIN], v[BENCH_STATS], v[BENCH_QUERY],
               v[BENCH_PHASES], v[BENCH_REFRESH], v[BENCH_LEAVE],
               p.C ? (double)r->peak_rss_kb * 1024.0 / (double)(p.C * p.K)
                   : 0.0);
        fflush(stdout);
    }
    printf("| spread max/min | | | | %.2fx | %.2fx | %.2fx | %.2fx | %.2fx | "
           "%.2fx | |\n",
           hi[0] / lo[0], hi[1] / lo[1], hi[2] / lo[2], hi[5] / lo[5],
           hi[3] / lo[3], hi[4] / lo[4]);
    fflush(stdout);
}

int bench_mode_scaling(int argc, char **argv) {
    uint64_t sizes[MAX_SIZES] = {20000, 200000, 2000000};
    size_t n = 3;

    if (argc > MAX_SIZES) {
        fprintf(stderr, "at most %d sizes\n", MAX_SIZES);
        return 2;
    }
    if (argc > 0) {
        n = (size_t)argc;
        for (int a = 0; a < argc; a++)
            sizes[a] = bench_parse_u64(argv[a]);
    }
    printf("## scaling: presence-mix at K=5 R=10 I=32 (libpresence %s)\n",
           presence_version());
    series("H = C/10: every channel has 50 members, the registry grows",
           sizes, n, 0);
    series("H = 20000: the channels grow with C", sizes, n, 1);
    printf("\nThe target (issue 4): each phase's ns/op within 1.5x across a "
           "100x growth of the work (for query with H fixed, per member).\n");
    return 0;
}
