/*
 * Shared helpers of the libpresence benchmarks.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench-common.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

void bench_fail(const char *what, int rc, const char *file, int line) {
    fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", file, line, what,
            presence_error_name(rc), presence_strerror(rc));
    exit(1);
}

void bench_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

uint64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

long bench_peak_rss_kb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss;
}

long bench_current_rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = -1;
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    if (resident < 0)
        return -1;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

uint64_t bench_parse_u64(const char *s) {
    char *end = NULL;
    unsigned long long v;
    if (!s || *s < '0' || *s > '9') {
        fprintf(stderr, "bad argument: %s\n", s ? s : "(null)");
        exit(2);
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        fprintf(stderr, "bad argument: %s\n", s);
        exit(2);
    }
    return (uint64_t)v;
}

void bench_params_default(bench_params *p) {
    p->C = 200000;
    p->H = 20000;
    p->K = 5;
    p->R = 10;
    p->I = 32;
    p->handles = false;
    p->close_batch = PRESENCE_CLOSE_MANY_MAX;
    p->history = 0;
    p->loop_clock = false;
    p->query_visit = false;
    p->threaded = false;
    p->shuffle = false;
    p->prefault_mb = 0;
}

void bench_prefault(uint64_t mb) {
#ifdef __GLIBC__
    /* Every allocation from the heap (32 MiB is the most glibc takes),
     * and nothing freed given back to the kernel. */
    enum { PIECE = 8 << 20 };
    if (mallopt(M_MMAP_THRESHOLD, 32 << 20) != 1 ||
        mallopt(M_TRIM_THRESHOLD, INT32_MAX) != 1) {
        fprintf(stderr, "--prefault: mallopt refused\n");
        exit(2);
    }
    size_t n = (size_t)((mb * 1024 * 1024 + PIECE - 1) / PIECE);
    char **pieces = calloc(n, sizeof *pieces);
    if (pieces == NULL) {
        fprintf(stderr, "--prefault: out of memory\n");
        exit(2);
    }
    for (size_t i = 0; i < n; i++) {
        pieces[i] = malloc(PIECE);
        if (pieces[i] == NULL) {
            fprintf(stderr, "--prefault: out of memory\n");
            exit(2);
        }
        for (size_t at = 0; at < PIECE; at += 4096) {
            ((volatile char *)pieces[i])[at] = 1; /* not optimised away */
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(pieces[i]);
    }
    free(pieces);
#else
    (void)mb;
    fprintf(stderr, "--prefault needs glibc's malloc\n");
    exit(2);
#endif
}

void bench_params_parse(bench_params *p, int argc, char **argv) {
    uint64_t *fields[5] = {&p->C, &p->H, &p->K, &p->R, &p->I};
    for (;;) {
        if (argc > 0 && strcmp(argv[0], "--handles") == 0) {
            p->handles = true;
            argc--;
            argv++;
        } else if (argc > 0 && strcmp(argv[0], "--loop-clock") == 0) {
            p->loop_clock = true;
            argc--;
            argv++;
        } else if (argc > 0 && strcmp(argv[0], "--threaded") == 0) {
            p->threaded = true;
            argc--;
            argv++;
        } else if (argc > 0 && strcmp(argv[0], "--shuffle") == 0) {
            p->shuffle = true;
            argc--;
            argv++;
        } else if (argc > 0 && strcmp(argv[0], "--query-visit") == 0) {
            p->query_visit = true;
            argc--;
            argv++;
        } else if (argc > 1 && strcmp(argv[0], "--close-batch") == 0) {
            p->close_batch = bench_parse_u64(argv[1]);
            if (p->close_batch == 0 ||
                p->close_batch > PRESENCE_CLOSE_MANY_MAX) {
                fprintf(stderr, "--close-batch: 1 to %u\n",
                        PRESENCE_CLOSE_MANY_MAX);
                exit(2);
            }
            argc -= 2;
            argv += 2;
        } else if (argc > 1 && strcmp(argv[0], "--prefault") == 0) {
            p->prefault_mb = bench_parse_u64(argv[1]);
            argc -= 2;
            argv += 2;
        } else if (argc > 1 && strcmp(argv[0], "--history") == 0) {
            p->history = bench_parse_u64(argv[1]);
            argc -= 2;
            argv += 2;
        } else {
            break;
        }
    }
    if (argc > 5) {
        fprintf(stderr,
                "usage: presence-bench [--handles [--close-batch N]] "
                "[--history N] [--loop-clock] [--query-visit] [--threaded] "
                "[--shuffle] [--prefault MB] [C H K R I]\n");
        exit(2);
    }
    for (int a = 0; a < argc; a++)
        *fields[a] = bench_parse_u64(argv[a]);
    if (p->H == 0 || p->K == 0 || p->K > p->H) {
        fprintf(stderr, "need 0 < K <= H\n");
        exit(2);
    }
    if (p->C > UINT64_C(4000000000)) {
        fprintf(stderr, "C too large\n");
        exit(2);
    }
}

static size_t digits(uint64_t v) {
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

void bench_names_make(bench_names *t, size_t count, const char *prefix,
                      uint64_t div) {
    size_t plen = strlen(prefix);
    uint64_t last = count ? (uint64_t)(count - 1) / div : 0;
    t->count = count;
    t->stride = plen + digits(last) + 1;
    t->buf = malloc(count ? count * t->stride : 1);
    if (!t->buf)
        bench_die("out of memory building %zu names", count);
    for (size_t i = 0; i < count; i++) {
        char *p = t->buf + i * t->stride;
        snprintf(p, t->stride, "%s%llu", prefix,
                 (unsigned long long)((uint64_t)i / div));
    }
}

void bench_names_free(bench_names *t) {
    free(t->buf);
    t->buf = NULL;
    t->count = 0;
}

void bench_infos_make(bench_infos *t, size_t count, size_t len,
                      const char *prefix) {
    char tmp[64];
    t->count = count;
    t->len = len;
    t->buf = NULL;
    if (len == 0 || count == 0)
        return;
    t->buf = malloc(count * len);
    if (!t->buf)
        bench_die("out of memory building %zu infos", count);
    for (size_t i = 0; i < count; i++) {
        char *p = t->buf + i * len;
        int n = snprintf(tmp, sizeof tmp, "%s%llu", prefix,
                         (unsigned long long)i);
        size_t id_len = (size_t)n < len ? (size_t)n : len;
        memcpy(p, tmp, id_len);
        memset(p + id_len, 'x', len - id_len);
    }
}

void bench_infos_free(bench_infos *t) {
    free(t->buf);
    t->buf = NULL;
    t->count = 0;
}

void bench_config(presence_config *cfg, bool single_threaded,
                  size_t info_len) {
    presence_config_init(cfg);
    cfg->single_threaded = single_threaded;
    cfg->hash_seed = BENCH_HASH_SEED;
    cfg->limits.channels_per_client_max = 0; /* no limit */
    if (cfg->limits.conn_info_max < info_len)
        cfg->limits.conn_info_max = info_len;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, size_t n) {
    if (n == 0)
        return 0.0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}
